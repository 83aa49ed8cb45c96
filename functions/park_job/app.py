"""Workflow task: park the job's wait (store its task token); a push or a cancel wakes it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.metering import metered
from fluxrelay.models.tasks import ParkInput
from fluxrelay.models.workflow import TASK_TRANSITIONS
from fluxrelay.observability import logger


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@metered(state_transitions=TASK_TRANSITIONS["WaitForResult"])
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = ParkInput.model_validate(event)
    woken = composition.container().lifecycle.park(task.job_id, task.token)
    return {"job_id": task.job_id, "woken": woken}
