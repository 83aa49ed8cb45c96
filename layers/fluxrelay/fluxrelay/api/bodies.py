"""Reading request bodies: JSON for every route that declares a body model, multipart for the
binary upload."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.event_handler import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError

from fluxrelay.api.envelope import JSON
from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.models.wire import parse_json_object
from fluxrelay.settings import get_settings


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with one reading of a route's declared body: JSON only
    (no content type counts as JSON), parsed by `parse_json_object`.

    Powertools would also turn form and multipart fields into the model (so `curl -d prompt=x`
    could be billed) and lets `json.loads` resolve duplicate keys and overflow on deep nesting.
    Only routes that declare a `Body()` parameter get here; `upload/binary` reads its multipart
    body itself."""

    def _get_body(self, app: ApiGatewayResolver) -> Any:
        content_type = app.current_event.headers.get("content-type", "").strip().lower()
        if content_type and not content_type.startswith(JSON):
            raise RequestUnsupportedContentType(
                "Unsupported content type",
                errors=[{"type": "unsupported_content_type", "loc": ("body",), "msg": content_type}],
            )
        body = app.current_event.decoded_body
        data = parse_json_object(body) if body else None
        model = _body_model(app)
        if data is None or model is None:
            return data
        # Validated here, with this deployment's URL policy and LoRA allowlist as the validation
        # context (Powertools validates without one). Powertools then takes the model instance
        # as it is: pydantic does not validate an instance of the model again.
        try:
            return model.model_validate(data, context=get_settings().validation_context())
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            ) from None


def _body_model(app: ApiGatewayResolver) -> type[BaseModel] | None:
    """The pydantic model of the route's one `Body()` parameter, if it has exactly one."""
    route = app.context.get("_route")
    params = route.dependant.body_params if route is not None else []
    if len(params) != 1:
        return None
    annotation = params[0].field_info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def read_bodies_as_json(app: ApiGatewayResolver) -> None:
    """Give `app` (built with `enable_validation=True`) the JsonBodyValidation reading. Powertools
    builds each route's middleware stack from this attribute; it has no public hook for it, so
    the tests of hostile bodies fail if that ever changes."""
    app._request_validation_middleware = JsonBodyValidation()


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("the body is not valid base64") from None


def parse_multipart_file(body: bytes, content_type: str, field_name: str = "file") -> tuple[str, bytes]:
    """(filename, bytes) of one multipart/form-data field."""
    # Imported here: only the binary upload reads multipart, and email's policies and header
    # parser are a few milliseconds a cold start serving another route need not pay.
    import email.parser
    import email.policy

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
