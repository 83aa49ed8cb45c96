"""What every API route shares: the envelope and the one mapping of errors to HTTP responses,
the caller's identity, per-key quotas and `Idempotency-Key` handling."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools.event_handler import ApiGatewayResolver, Response
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from fluxrelay.domain.errors import FluxRelayError, InvalidRequestError, UnauthorizedError
from fluxrelay.idempotency import MAX_KEY_LENGTH, run_once
from fluxrelay.models.wire import error_body, parse_json_object, success
from fluxrelay.observability import logger
from fluxrelay.settings import Settings, get_settings

JSON = "application/json"


class Limiter(Protocol):
    def take(self, key_id: str, *, images: int, requests_per_minute: int, images_per_day: int) -> None: ...


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


# --- request bodies -------------------------------------------------------------------------
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
        return parse_json_object(body) if body else None


def read_bodies_as_json(app: ApiGatewayResolver) -> None:
    """Give `app` (built with `enable_validation=True`) the JsonBodyValidation reading. Powertools
    builds each route's middleware stack from this attribute; it has no public hook for it, so
    the tests of hostile bodies fail if that ever changes."""
    app._request_validation_middleware = JsonBodyValidation()


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


def take_quota(event: APIGatewayProxyEventV2, limiter: Limiter, settings: Settings, images: int) -> None:
    """The caller key's requests/minute and images/day, refused before anything is paid for."""
    context = authorizer_context(event)
    limiter.take(
        str(context.get("key_id") or context.get("owner")),
        images=images,
        requests_per_minute=int(context.get("requests_per_minute") or settings.default_requests_per_minute),
        images_per_day=int(context.get("images_per_day") or settings.default_images_per_day),
    )


def once_per_key(
    event: APIGatewayProxyEventV2,
    owner: str,
    route: str,
    payload: dict[str, Any],
    work: Callable[[], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Run `work` once per `Idempotency-Key` (when the caller sent one); returns its outcome and
    the response headers that mark a replay."""
    key = event.headers.get("idempotency-key")
    if key is None:
        return work(), None
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequestError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    outcome, replayed = run_once(owner, key, {"route": route, **payload}, work)
    return outcome, ({"Idempotent-Replayed": "true"} if replayed else None)
