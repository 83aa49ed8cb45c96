"""Webhook deliveries: a job's delivery log, a replay of its webhook, and a replay of every
webhook of a time range (after a receiver's outage)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import http_event, require_owner
from fluxrelay.api.envelope import envelope
from fluxrelay.api.presenter import delivery_log
from fluxrelay.models.deliveries import WebhookDeliveryLogEnvelope

router = Router()


def _owner() -> str:
    return require_owner(http_event(router))


@router.get(
    "/api/v3/predictions/<job_id>/webhooks",
    summary="Get a prediction's webhook delivery log",
    tags=[openapi.WEBHOOKS],
    responses=openapi.responses(WebhookDeliveryLogEnvelope, 401, 404),
)
def get_webhook_deliveries(job_id: str) -> Response[WebhookDeliveryLogEnvelope]:
    job = composition.container().lifecycle.owned(_owner(), job_id)
    return envelope(delivery_log(job))


@router.post(
    "/api/v3/predictions/<job_id>/webhooks/redeliver",
    summary="Send a prediction's webhook again",
    description="Same `webhook-id`, fresh timestamp and signature, so receivers deduplicate.",
    tags=[openapi.WEBHOOKS],
    responses=openapi.responses(WebhookDeliveryLogEnvelope, 401, 404, 409),
)
def redeliver_webhook(job_id: str) -> Response[WebhookDeliveryLogEnvelope]:
    owner = _owner()
    c = composition.container()
    c.deliverer.replay(owner, job_id)
    return envelope(delivery_log(c.lifecycle.owned(owner, job_id)))
