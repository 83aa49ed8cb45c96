"""Workflow task: SNS message for the finished job, and one webhook delivery attempt."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fluxrelay.composition import container
from fluxrelay.observability import logger, tracer


class NotifyInput(BaseModel):
    job_id: str


class NotifyOutput(BaseModel):
    job_id: str
    attempt: int
    webhook: str
    wait_seconds: int


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = NotifyInput.model_validate(event)
    outcome = container().notify.notify(task.job_id)
    return NotifyOutput(
        job_id=outcome.job_id,
        attempt=outcome.attempt,
        webhook=outcome.webhook,
        wait_seconds=outcome.wait_seconds,
    ).model_dump(mode="json")
