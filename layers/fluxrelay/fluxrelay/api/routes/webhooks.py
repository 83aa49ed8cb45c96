"""Webhook signing secrets: read the current one, rotate it (the previous one stays valid a while)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import http_event, require_owner
from fluxrelay.api.envelope import envelope
from fluxrelay.models.wire import Envelope

router = Router()


class WebhookSecret(BaseModel):
    """Answer of `GET /api/v3/webhook/secret`, as WaveSpeed's."""

    secret: str


class RotatedWebhookSecret(WebhookSecret):
    """Answer of `POST /api/v3/webhook/secret/rotate`: the new secret, and until when (epoch
    seconds) deliveries are also signed with the previous one."""

    previous_valid_until: int | None = None


class WebhookSecretEnvelope(Envelope[WebhookSecret]):
    pass


class RotatedWebhookSecretEnvelope(Envelope[RotatedWebhookSecret]):
    pass


def _owner() -> str:
    return require_owner(http_event(router))


@router.get(
    "/api/v3/webhook/secret",
    summary="Get your webhook signing secret",
    tags=[openapi.WEBHOOKS],
    responses=openapi.responses(WebhookSecretEnvelope, 401),
)
def webhook_secret() -> Response[WebhookSecretEnvelope]:
    return envelope(WebhookSecret(secret=composition.container().webhook_secrets.current(_owner())))


@router.post(
    "/api/v3/webhook/secret/rotate",
    summary="Rotate your webhook signing secret",
    description="A new secret; deliveries are signed with both until `previous_valid_until`.",
    tags=[openapi.WEBHOOKS],
    responses=openapi.responses(RotatedWebhookSecretEnvelope, 401),
)
def rotate_webhook_secret() -> Response[RotatedWebhookSecretEnvelope]:
    owner = _owner()
    c = composition.container()
    doc = c.webhook_secrets.rotate(owner, c.settings.webhook_rotation_grace_seconds)
    return envelope(RotatedWebhookSecret(secret=doc["current"], previous_valid_until=doc["previous_until"]))
