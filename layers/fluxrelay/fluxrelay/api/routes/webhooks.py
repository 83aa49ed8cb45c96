"""Webhook signing secrets: read the current one, rotate it (the previous one stays valid a while)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from fluxrelay import composition
from fluxrelay.api.auth import http_event, require_owner
from fluxrelay.api.envelope import envelope
from fluxrelay.models.wire import Envelope

router = Router()


def _owner() -> str:
    return require_owner(http_event(router))


@router.get("/api/v3/webhook/secret")
def webhook_secret() -> Response[Envelope[dict[str, str]]]:
    return envelope({"secret": composition.container().webhook_secrets.current(_owner())})


@router.post("/api/v3/webhook/secret/rotate")
def rotate_webhook_secret() -> Response[Envelope[dict[str, Any]]]:
    owner = _owner()
    c = composition.container()
    doc = c.webhook_secrets.rotate(owner, c.settings.webhook_rotation_grace_seconds)
    return envelope({"secret": doc["current"], "previous_valid_until": doc["previous_until"]})
