"""Workflow task: record a job as failed after a task failed for good (the Catch path)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.metering import metered
from fluxrelay.models.tasks import MarkFailedInput
from fluxrelay.models.workflow import TASK_TRANSITIONS
from fluxrelay.observability import logger, metrics


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@metrics.log_metrics
@metered(state_transitions=TASK_TRANSITIONS["MarkFailed"])
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = MarkFailedInput.model_validate(event)
    return composition.container().fail.mark_failed(task.job_id, task.error).model_dump(mode="json")
