"""Upload-expiry task: after the upload window, a job still waiting for its upload times out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fluxrelay.composition import container
from fluxrelay.observability import logger, tracer


class ExpireUploadInput(BaseModel):
    job_id: str


class ExpireUploadOutput(BaseModel):
    job_id: str
    status: str
    expired: bool


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = ExpireUploadInput.model_validate(event)
    outcome = container().uploads.expire(task.job_id)
    return ExpireUploadOutput(
        job_id=outcome.job_id, status=outcome.status, expired=outcome.expired
    ).model_dump(mode="json")
