"""The caller: the owner the authorizer resolved, their per-key quotas, and our own base URL.

The authorizer never denies (an HTTP API cannot shape its own 401 body); `require_owner` turns a
missing or bad key into the WaveSpeed 401 envelope here.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from fluxrelay.domain.errors import UnauthorizedError
from fluxrelay.observability import logger
from fluxrelay.settings import Settings


class Limiter(Protocol):
    """Per-key request rate and daily image quota; raises QuotaExceededError when used up."""

    def take(self, key_id: str, *, images: int, requests_per_minute: int, images_per_day: int) -> None: ...


def http_event(router: Router) -> APIGatewayProxyEventV2:
    # Every router is included in an APIGatewayHttpResolver: its events are payload 2.0.
    return cast(APIGatewayProxyEventV2, router.current_event)


def authorizer_context(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    return event.request_context.authorizer.get_lambda or {}


def require_owner(event: APIGatewayProxyEventV2) -> str:
    """The caller's owner from the authorizer context, or the 401 envelope."""
    context = authorizer_context(event)
    owner = context.get("owner") or ""
    if not owner:
        if context.get("auth_error") == "invalid":
            raise UnauthorizedError("invalid or revoked API key")
        raise UnauthorizedError("missing API key: send the header 'Authorization: Bearer <your key>'")
    logger.append_keys(owner=owner, key_id=context.get("key_id"))
    return str(owner)


def base_url(event: APIGatewayProxyEventV2, settings: Settings) -> str:
    """Our public base URL, for `urls.get` (API Gateway is https on its own domain)."""
    return settings.public_base_url or f"https://{event.request_context.domain_name}"


def take_quota(event: APIGatewayProxyEventV2, limiter: Limiter, settings: Settings, images: int) -> None:
    """The caller key's requests/minute and images/day, refused before anything is paid for."""
    context = authorizer_context(event)
    limiter.take(
        str(context.get("key_id") or context.get("owner")),
        images=images,
        requests_per_minute=int(context.get("requests_per_minute") or settings.default_requests_per_minute),
        images_per_day=int(context.get("images_per_day") or settings.default_images_per_day),
    )
