"""Predictions: submit (async or sync mode), and the result of a job."""

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from pydantic import BaseModel

from fluxrelay import composition
from fluxrelay.api import openapi
from fluxrelay.api.auth import base_url, http_event, require_owner, take_quota
from fluxrelay.api.envelope import envelope, error_response
from fluxrelay.api.idempotency import IdempotentOutcome
from fluxrelay.domain import usage
from fluxrelay.domain.errors import FluxRelayError
from fluxrelay.domain.jobs import JobItem
from fluxrelay.models.wire import (
    CANCEL_AFTER_HEADER,
    GenerationRequest,
    PredictionEnvelope,
    parse_cancel_after,
)
from fluxrelay.observability import MetricName, count, logger, milliseconds

SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora"
_SYNC_POLL_SECONDS = 0.5

router = Router()


class RefusedSubmit(BaseModel):
    status: int
    message: str


class SubmitOutcome(IdempotentOutcome):
    """What an `Idempotency-Key` stores for a submit: the job, or the final refusal."""

    job_id: str | None = None
    error: RefusedSubmit | None = None


def _present(job: JobItem, headers: dict[str, str] | None = None, *, with_metrics: bool = False) -> Response:
    prediction = composition.container().presenter.present(job, with_metrics=with_metrics)
    return envelope(prediction, headers=headers)


@router.post(
    SUBMIT_PATH,
    summary="Submit a generation",
    description="Validates the body strictly (unknown fields are refused, never billed), records the job "
    "and sends it upstream; the answer is the prediction with `status: created`, or with "
    "`enable_sync_mode` the finished one.",
    tags=[openapi.PREDICTIONS],
    responses=openapi.responses(PredictionEnvelope, 400, 401, 409, 415, 422, 429, 502, 503),
)
def submit(
    request: Annotated[GenerationRequest, Body()],
    webhook: Annotated[str | None, Query(description="https URL to receive the signed webhook")] = None,
    idempotency_key: openapi.IdempotencyKey = None,
    cancel_after: Annotated[
        str | None,
        Header(
            alias=CANCEL_AFTER_HEADER,
            description="Your deadline for the job, e.g. 45s, 5m or 1h (capped by the operator's): "
            "unfinished by then, it ends as timeout.",
        ),
    ] = None,
) -> Response[PredictionEnvelope]:
    started = time.perf_counter()
    event = http_event(router)
    owner = require_owner(event)
    c = composition.container()
    cancel_after_seconds = parse_cancel_after(cancel_after) if cancel_after is not None else None

    submitted: list[JobItem] = []  # the job, when this call is the one that created it

    def work() -> SubmitOutcome:
        take_quota(event, c.limiter, c.settings, request.num_images)
        try:
            job = c.submit.submit(
                owner,
                request,
                webhook_url=webhook,
                result_base_url=base_url(event, c.settings),
                cancel_after_seconds=cancel_after_seconds,
            )
        except FluxRelayError as exc:
            if exc.retryable or exc.http_status == 429:
                raise  # nothing was created upstream: a retry with the same key may go ahead
            return SubmitOutcome(error=RefusedSubmit(status=exc.http_status, message=exc.message))
        submitted.append(job)
        return SubmitOutcome(job_id=job.job_id)

    payload = {
        "body": request.model_dump(mode="json"),
        "webhook": webhook,
        "cancel_after_seconds": cancel_after_seconds,
    }
    outcome, headers = c.idempotency.once_per_key(
        event.headers, router.lambda_context, owner, "submit", payload, work, SubmitOutcome
    )
    if outcome.job_id is None:
        refused = outcome.error or RefusedSubmit(status=500, message="internal error")
        return error_response(refused.status, refused.message, headers=headers)
    # A replayed key answers the job it created; a first call has it at hand (no second read).
    job = submitted[0] if submitted else c.lifecycle.owned(owner, outcome.job_id)
    logger.set_correlation_id(job.job_id)
    usage.bind(job.job_id)  # this invocation is part of what the job costs
    count(MetricName.JOBS_SUBMITTED)
    if request.enable_sync_mode:
        return _wait_for(job, headers)
    answer = _present(job, headers=headers)
    milliseconds(MetricName.SUBMIT_LATENCY, (time.perf_counter() - started) * 1000)
    return answer


def _wait_for(job: JobItem, headers: dict[str, str] | None) -> Response:
    """Sync mode: wait below the API Gateway limit, then answer the final prediction or the
    WaveSpeed 5004 `processing` shape (the job goes on; the caller polls `urls.get`)."""
    c = composition.container()
    deadline = time.monotonic() + c.settings.sync_wait_seconds
    while not job.status.terminal and time.monotonic() < deadline:
        time.sleep(_SYNC_POLL_SECONDS)
        job = c.jobs.get(job.job_id) or job
    if job.status.terminal:
        return _present(job, headers)
    prediction = c.presenter.present(job)
    prediction.status = "processing"
    prediction.code = 5004
    prediction.error = "Sync mode timed out; the task keeps running, poll urls.get for the result"
    return envelope(prediction, headers=headers)


@router.get(
    "/api/v3/predictions/<job_id>/result",
    summary="Get a prediction's result",
    tags=[openapi.PREDICTIONS],
    responses=openapi.responses(PredictionEnvelope, 401, 404),
)
def get_result(job_id: str) -> Response[PredictionEnvelope]:
    return _present_owned(job_id)


@router.get(
    "/api/v3/predictions/<job_id>",
    summary="Get a prediction",
    tags=[openapi.PREDICTIONS],
    responses=openapi.responses(PredictionEnvelope, 401, 404),
)
def get_prediction(job_id: str) -> Response[PredictionEnvelope]:
    return _present_owned(job_id)


def _present_owned(job_id: str) -> Response:
    """The caller's job with its cost, for both read routes (WaveSpeed has both); someone else's
    job is the same 404 as an unknown id."""
    job = composition.container().lifecycle.owned(require_owner(http_event(router)), job_id)
    return _present(job, with_metrics=True)
