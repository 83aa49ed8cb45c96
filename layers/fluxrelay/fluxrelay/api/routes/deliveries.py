"""Webhook deliveries: a job's delivery log, a replay of its webhook, and a replay of every
webhook of a time range (after a receiver's outage)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import http_event, require_owner
from fluxrelay.api.envelope import envelope
from fluxrelay.api.presenter import delivery_log, redelivery_report
from fluxrelay.models.deliveries import (
    WebhookDeliveryLogEnvelope,
    WebhookRedeliverRequest,
    WebhookRedeliveryReportEnvelope,
)
from fluxrelay.observability import logger

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


@router.post(
    "/api/v3/webhooks/redeliver",
    summary="Send the webhooks of your predictions again, after an outage",
    description="Replays every finished prediction of yours that matches the filters (each like "
    "the single replay: same `webhook-id`, fresh timestamp and signature), at most `limit` per "
    "call, newest first; pass `next_cursor` back as `cursor` for the rest.",
    tags=[openapi.WEBHOOKS],
    responses=openapi.responses(WebhookRedeliveryReportEnvelope, 400, 401, 415),
)
def redeliver_webhooks(
    request: Annotated[WebhookRedeliverRequest, Body()],
) -> Response[WebhookRedeliveryReportEnvelope]:
    c = composition.container()
    jobs, next_cursor = c.history.listing(_owner(), request)
    report = redelivery_report(c.deliverer.replay_each(jobs), next_cursor)
    logger.info(
        "webhooks replayed",
        extra={"matched": report.matched, "redelivered": report.redelivered, "failed": report.failed},
    )
    return envelope(report)
