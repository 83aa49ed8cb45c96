"""The public HTTP API (WaveSpeed v3 wire format): submit, result, webhook secret, health, OpenAPI.

The authorizer resolves the API key to an owner and never denies (HTTP APIs cannot shape their
own 401 body); `require_owner` turns a missing or bad key into the WaveSpeed 401 envelope here.
"""

import json
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay.composition import container
from fluxrelay.domain.errors import FluxRelayError
from fluxrelay.domain.jobs import JobItem
from fluxrelay.http import (
    base_url,
    envelope,
    error_response,
    from_error,
    once_per_key,
    read_bodies_as_json,
    require_owner,
    take_quota,
)
from fluxrelay.idempotency import register_context
from fluxrelay.models.wire import (
    Envelope,
    GenerationRequest,
    Prediction,
    describe_errors,
    enforce_lora_allowlist,
)
from fluxrelay.observability import logger, metrics, tracer
from fluxrelay.playground import router as playground_router
from fluxrelay.routes_uploads import router as uploads_router

app = APIGatewayHttpResolver(enable_validation=True)
read_bodies_as_json(app)
app.include_router(uploads_router)
app.include_router(playground_router)
app.enable_swagger(path="/swagger", title="fluxrelay", version="1.0.0")

SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora"
_SYNC_POLL_SECONDS = 0.5


def present(job: JobItem, headers: dict[str, str] | None = None) -> Response:
    return envelope(container().presenter.present(job), headers=headers)


@app.post(SUBMIT_PATH)
@tracer.capture_method
def submit(
    request: Annotated[GenerationRequest, Body()],
    webhook: Annotated[str | None, Query(description="https URL to receive the signed webhook")] = None,
) -> Response[Envelope[Prediction]]:
    owner = require_owner(app.current_event)
    c = container()
    request = enforce_lora_allowlist(request, c.settings.lora_allowlist)

    def work() -> dict[str, Any]:
        take_quota(app.current_event, c.limiter, c.settings, request.num_images)
        try:
            job = c.submit.submit(
                owner, request, webhook_url=webhook, result_base_url=base_url(app.current_event)
            )
        except FluxRelayError as exc:
            if exc.retryable or exc.http_status == 429:
                raise  # nothing was created upstream: a retry with the same key may go ahead
            return {"error": {"status": exc.http_status, "message": exc.message}}
        return {"job_id": job.job_id}

    payload = {"body": request.model_dump(mode="json"), "webhook": webhook}
    outcome, headers = once_per_key(app.current_event, owner, "submit", payload, work)
    if "error" in outcome:
        return error_response(outcome["error"]["status"], outcome["error"]["message"], headers=headers)
    job = c.lifecycle.owned(owner, outcome["job_id"])
    logger.set_correlation_id(job.job_id)
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    if request.enable_sync_mode:
        return _wait_for(job, headers)
    return present(job, headers=headers)


def _wait_for(job: JobItem, headers: dict[str, str] | None) -> Response:
    """Sync mode: wait below the API Gateway limit, then answer the final prediction or the
    WaveSpeed 5004 `processing` shape (the job goes on; the caller polls `urls.get`)."""
    c = container()
    deadline = time.monotonic() + c.settings.sync_wait_seconds
    while not job.status.terminal and time.monotonic() < deadline:
        time.sleep(_SYNC_POLL_SECONDS)
        job = c.jobs.get(job.job_id) or job
    if job.status.terminal:
        return present(job, headers)
    prediction = c.presenter.present(job)
    prediction.status = "processing"
    prediction.code = 5004
    prediction.error = "Sync mode timed out; the task keeps running, poll urls.get for the result"
    return envelope(prediction, headers=headers)


@app.get("/api/v3/predictions/<job_id>/result")
def get_result(job_id: str) -> Response[Envelope[Prediction]]:
    return present(container().lifecycle.owned(require_owner(app.current_event), job_id))


@app.get("/api/v3/predictions/<job_id>")
def get_prediction(job_id: str) -> Response[Envelope[Prediction]]:
    return present(container().lifecycle.owned(require_owner(app.current_event), job_id))


@app.get("/api/v3/webhook/secret")
def webhook_secret() -> Response[Envelope[dict[str, str]]]:
    owner = require_owner(app.current_event)
    return envelope({"secret": container().webhook_secrets.current(owner)})


@app.post("/api/v3/webhook/secret/rotate")
def rotate_webhook_secret() -> Response[Envelope[dict[str, Any]]]:
    owner = require_owner(app.current_event)
    c = container()
    doc = c.webhook_secrets.rotate(owner, c.settings.webhook_rotation_grace_seconds)
    return envelope({"secret": doc["current"], "previous_valid_until": doc["previous_until"]})


@app.get("/health")
def health() -> Response[Envelope[dict[str, str]]]:
    return envelope({"status": "ok"})


@app.get("/openapi.json")
def openapi() -> Response[dict[str, Any]]:
    return Response(
        status_code=200,
        content_type="application/json",
        # A dict, not the JSON text: the route's response model (a dict) is validated.
        body=json.loads(app.get_openapi_json_schema(title="fluxrelay")),
    )


# --- errors: every answer is the envelope ---------------------------------------------------
@app.exception_handler(RequestValidationError)
def on_validation_error(exc: RequestValidationError) -> Response:
    return error_response(400, describe_errors(exc.errors()))


@app.exception_handler(RequestUnsupportedContentType)
def on_unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
    # A body sent as text/plain, form data, ...: the caller's mistake, not a 500.
    return error_response(415, "send the request body as JSON with 'Content-Type: application/json'")


@app.exception_handler(UnicodeDecodeError)
def on_undecodable_body(_: UnicodeDecodeError) -> Response:
    # Powertools decodes the body as UTF-8 before parsing it as JSON.
    return error_response(400, "the body must be UTF-8 encoded JSON")


@app.exception_handler(ValueError)
def on_value_error(exc: ValueError) -> Response:
    # Powertools' multipart parser raises a bare ValueError for a malformed multipart body (e.g.
    # no boundary): the caller's mistake. Any other ValueError is ours: the generic 500.
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is not None and frame.tb_frame.f_code.co_name.startswith("_parse_multipart"):
        return error_response(400, f"the multipart body could not be read: {exc}")
    return on_unexpected(exc)


@app.exception_handler(FluxRelayError)
def on_domain_error(exc: FluxRelayError) -> Response:
    log = logger.warning if exc.http_status >= 500 else logger.info
    log("request refused", extra={"error_type": type(exc).__name__, "status": exc.http_status})
    return from_error(exc)


@app.not_found
def on_not_found(_: RouteNotFound) -> Response:
    return error_response(404, "no such route")


@app.exception_handler(Exception)
def on_unexpected(exc: Exception) -> Response:
    # A true boundary: whatever went wrong, the caller gets the envelope, never a stack trace.
    logger.exception("unhandled error")
    return error_response(500, "internal error; the request was not completed")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_context(context)
    return app.resolve(event, context)
