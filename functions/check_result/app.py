"""Workflow task: one check of the upstream result; says whether to store, notify or wait again."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.metering import metered
from fluxrelay.models.tasks import JobTask
from fluxrelay.models.workflow import TASK_TRANSITIONS
from fluxrelay.observability import logger, metrics


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@metrics.log_metrics
@metered(state_transitions=TASK_TRANSITIONS["CheckResult"])
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = JobTask.model_validate(event)
    return composition.container().poll.check(task.job_id).model_dump(mode="json")
