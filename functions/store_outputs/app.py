"""Workflow task: copy the upstream outputs into our bucket and complete the job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from fluxrelay.composition import container
from fluxrelay.observability import logger, tracer


class StoreOutputsInput(BaseModel):
    job_id: str


class StoreOutputsOutput(BaseModel):
    job_id: str
    status: str


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StoreOutputsInput.model_validate(event)
    status = container().store_outputs.store_outputs(task.job_id)
    return StoreOutputsOutput(job_id=task.job_id, status=status).model_dump(mode="json")
