"""The one place that turns errors into HTTP responses (the WaveSpeed envelope)."""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from fluxrelay.errors import FluxRelayError, UnauthorizedError
from fluxrelay.models import error_body, success
from fluxrelay.observability import logger
from fluxrelay.settings import get_settings

JSON = "application/json"


def envelope(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # A dict body: Powertools serialises it and validates it against the route's response model.
    return Response(status_code=status, content_type=JSON, body=success(data), headers=headers)


def error_response(
    status: int, message: str, *, retry_after: float | None = None, headers: dict[str, str] | None = None
) -> Response:
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    # A dict, like `envelope`: a route that returns this has it validated against its response
    # model (Envelope[...] allows `"data": null`); a JSON string would fail that validation.
    return Response(status_code=status, content_type=JSON, body=error_body(status, message), headers=headers)


def from_error(exc: FluxRelayError) -> Response:
    retry_after = exc.retry_after
    if retry_after is None and exc.http_status in (429, 503):
        retry_after = 5
    return error_response(exc.http_status, exc.message, retry_after=retry_after)


# --- the caller -----------------------------------------------------------------------------
def authorizer_context(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    return event.request_context.authorizer.get_lambda or {}


def require_owner(event: APIGatewayProxyEventV2) -> str:
    """The caller's owner from the authorizer context. The authorizer never denies (an HTTP API
    cannot shape its own 401 body), so a missing or bad key becomes the 401 envelope here."""
    context = authorizer_context(event)
    owner = context.get("owner") or ""
    if not owner:
        if context.get("auth_error") == "invalid":
            raise UnauthorizedError("invalid or revoked API key")
        raise UnauthorizedError("missing API key: send the header 'Authorization: Bearer <your key>'")
    logger.append_keys(owner=owner, key_id=context.get("key_id"))
    return str(owner)


def base_url(event: APIGatewayProxyEventV2) -> str:
    """Our public base URL, for `urls.get` (API Gateway is https on its own domain)."""
    return get_settings().public_base_url or f"https://{event.request_context.domain_name}"
