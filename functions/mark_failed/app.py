"""Workflow task: record a job as failed after a task failed for good (the Catch path)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from fluxrelay.composition import container
from fluxrelay.observability import logger, tracer


class CaughtError(BaseModel):
    # The shape Step Functions puts at the Catch ResultPath.
    Error: str = "States.TaskFailed"
    Cause: str = ""


class MarkFailedInput(BaseModel):
    job_id: str
    error: CaughtError = Field(default_factory=CaughtError)


class MarkFailedOutput(BaseModel):
    job_id: str
    status: str


def _message(error: CaughtError) -> str:
    # A Lambda error's Cause is its JSON error shape; callers get its message, never the trace.
    try:
        cause = json.loads(error.Cause)
    except ValueError:
        cause = None
    if isinstance(cause, dict) and cause.get("errorMessage"):
        return str(cause["errorMessage"])
    return f"the workflow step failed ({error.Error})"


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = MarkFailedInput.model_validate(event)
    logger.warning("workflow step failed", extra={"error": task.error.Error})
    status = container().fail.mark_failed(task.job_id, task.error.Error, _message(task.error))
    return MarkFailedOutput(job_id=task.job_id, status=status).model_dump(mode="json")
