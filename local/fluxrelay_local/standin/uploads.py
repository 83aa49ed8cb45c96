"""The stand-in's media uploads: WaveSpeed's binary upload, and the ticket + presigned-PUT flow."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from werkzeug.utils import secure_filename
from werkzeug.wrappers import Request, Response

from fluxrelay_local.standin.wire import ApiError, envelope


class Uploads:
    """Uploaded files by token, served back at `/media/<token>/<filename>`. The server checks the
    API key before `binary` and `ticket`; `put` and `media` need none, as on upstream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, dict[str, Any]] = {}

    def clear(self) -> None:
        with self._lock:
            self._tickets.clear()

    def binary(self, request: Request, base_url: str) -> Response:
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "multipart field 'file' is required")
        data = upload.read()
        filename = secure_filename(upload.filename or "") or "upload"
        content_type = upload.mimetype or "application/octet-stream"
        token = self._new(filename, content_type, data)
        return envelope(
            {
                "type": content_type.split("/", 1)[0],
                "download_url": f"{base_url}/media/{token}/{filename}",
                "filename": filename,
                "size": len(data),
            }
        )

    def ticket(self, request: Request, base_url: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("filename"), str) or not body["filename"]:
            raise ApiError(400, "filename is required")
        size = body.get("size", 0)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ApiError(400, "size must be a non-negative integer")
        content_type = body.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str):
            raise ApiError(400, "content_type must be a string")
        filename = secure_filename(body["filename"]) or "upload"
        token = self._new(filename, content_type, None)
        return envelope(
            {
                "download_url": f"{base_url}/media/{token}/{filename}",
                "filename": filename,
                "size": size,
                "upload": {
                    "method": "PUT",
                    "url": f"{base_url}/upload/{token}",
                    "headers": {"Content-Type": content_type},
                },
            }
        )

    def put(self, request: Request, token: str) -> Response:
        # Behaves like an S3 presigned PUT: the ticket is the credential, so an Authorization
        # header is an error, and the signed Content-Type must match exactly.
        with self._lock:
            ticket = self._tickets.get(token)
        if ticket is None:
            return Response("NoSuchUpload", status=404, mimetype="text/plain")
        if "Authorization" in request.headers:
            return Response("InvalidArgument: only one auth mechanism allowed", status=400)
        if request.headers.get("Content-Type", "") != ticket["content_type"]:
            return Response("SignatureDoesNotMatch: Content-Type differs from the ticket", status=403)
        with self._lock:
            ticket["data"] = request.get_data()
        return Response("", status=200)

    def media(self, token: str, filename: str) -> Response:
        with self._lock:
            ticket = self._tickets.get(token)
        if ticket is None or ticket["data"] is None or ticket["filename"] != filename:
            return Response("Not Found", status=404, mimetype="text/plain")
        return Response(ticket["data"], mimetype=ticket["content_type"])

    def _new(self, filename: str, content_type: str, data: bytes | None) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._tickets[token] = {"filename": filename, "content_type": content_type, "data": data}
        return token
