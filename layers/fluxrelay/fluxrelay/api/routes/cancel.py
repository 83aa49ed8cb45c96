"""Cancel route: `POST /api/v3/predictions/{id}/cancel` ends the caller's unfinished job.

Someone else's job is the same 404 as an unknown id; a finished job is a 409 naming its status.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import http_event, require_owner
from fluxrelay.api.envelope import envelope
from fluxrelay.models.wire import PredictionEnvelope
from fluxrelay.observability import logger, metrics

router = Router()


@router.post(
    "/api/v3/predictions/<job_id>/cancel",
    summary="Cancel a prediction",
    description="Ends your unfinished prediction as `cancelled` and answers it. Never sent upstream: not "
    "billed. Already running upstream: WaveSpeed may still bill it (its `error` says so).",
    tags=[openapi.PREDICTIONS],
    responses=openapi.responses(PredictionEnvelope, 401, 404, 409),
)
def cancel_prediction(job_id: str) -> Response[PredictionEnvelope]:
    owner = require_owner(http_event(router))
    c = composition.container()
    job = c.cancel.cancel(owner, job_id)
    logger.info("job cancelled", extra={"job_id": job_id, "sent_upstream": job.dispatched_at is not None})
    metrics.add_metric(name="JobsCancelled", unit="Count", value=1)
    return envelope(c.presenter.present(job))
