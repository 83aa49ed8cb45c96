"""The upstream's push: `POST /api/v3/upstream/webhooks/{job id}`, WaveSpeed's signed webhook.

Not behind our API keys (WaveSpeed cannot send them): the only credential is WaveSpeed's own
`v3,<hex>` signature over `{webhook-id}.{webhook-timestamp}.{raw body}` with the account's
secret, within 300 s; anything else is the 401 envelope. A verified push only wakes the job's
workflow (see `domain/push.py`), so duplicates and late deliveries are harmless.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ValidationError

from fluxrelay import composition
from fluxrelay.adapters.wavespeed import verify_wavespeed_webhook
from fluxrelay.api import openapi
from fluxrelay.api.auth import http_event
from fluxrelay.api.bodies import raw_body
from fluxrelay.api.envelope import envelope
from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.domain.lifecycle import PUSH_PATH
from fluxrelay.domain.push import PushOutcome
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.models.wire import Envelope

router = Router()


class PushReceipt(BaseModel):
    status: PushOutcome


class PushReceiptEnvelope(Envelope[PushReceipt]):
    """The envelope of a received upstream webhook."""


@router.post(
    PUSH_PATH.replace("{job_id}", "<job_id>"),
    summary="Receive WaveSpeed's webhook for one of our upstream tasks",
    description="Called by WaveSpeed, not by API clients: no API key, only WaveSpeed's `v3` signature.",
    tags=[openapi.WEBHOOKS],
    security=openapi.PUBLIC,
    responses=openapi.responses(PushReceiptEnvelope, 400, 401, 404),
)
def upstream_webhook(job_id: str) -> Response[PushReceiptEnvelope]:
    event = http_event(router)
    c = composition.container()
    payload = verify_wavespeed_webhook(c.upstream_webhook_secret(), dict(event.headers), raw_body(event))
    try:
        task = UpstreamPrediction.model_validate(payload)
    except ValidationError:
        raise InvalidRequestError("the webhook body is not a WaveSpeed prediction") from None
    return envelope(PushReceipt(status=c.push.receive(job_id, task)))
