"""Workflow task: one check of the upstream result; says whether to store, fail or wait again."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fluxrelay.composition import container
from fluxrelay.observability import logger, tracer


class CheckResultInput(BaseModel):
    job_id: str


class CheckResultOutput(BaseModel):
    job_id: str
    status: str
    wait_seconds: int


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = CheckResultInput.model_validate(event)
    outcome = container().poll.check(task.job_id)
    return CheckResultOutput(
        job_id=outcome.job_id, status=outcome.status, wait_seconds=outcome.wait_seconds
    ).model_dump(mode="json")
