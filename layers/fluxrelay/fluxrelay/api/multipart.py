"""multipart/form-data bodies (the binary upload route)."""

from __future__ import annotations

import email.parser
import email.policy

from fluxrelay.domain.errors import InvalidRequestError


def parse_multipart_file(body: bytes, content_type: str, field_name: str = "file") -> tuple[str, bytes]:
    """(filename, bytes) of one multipart/form-data field."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequestError("the body must be multipart/form-data with a field 'file'")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise InvalidRequestError("the body must be multipart/form-data with a field 'file'")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field_name:
            data = part.get_payload(decode=True) or b""
            return str(part.get_filename() or ""), bytes(data)
    raise InvalidRequestError(f"multipart field '{field_name}' is required")
