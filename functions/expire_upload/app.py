"""Upload-expiry task: after the upload window, a job still waiting for its upload times out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.models.tasks import JobTask
from fluxrelay.observability import logger


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = JobTask.model_validate(event)
    return composition.container().upload_expiry.expire(task.job_id).model_dump(mode="json")
