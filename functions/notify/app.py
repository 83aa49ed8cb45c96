"""Workflow task: SNS message for the finished job, and one webhook delivery attempt."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.metering import metered
from fluxrelay.models.tasks import JobTask
from fluxrelay.models.workflow import TASK_TRANSITIONS, WebhookDelivery
from fluxrelay.observability import logger, metrics


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@metrics.log_metrics
# The last Notify of a job (no redelivery follows) reports what the whole job cost.
@metered(
    state_transitions=TASK_TRANSITIONS["Notify"], last=lambda out: out["webhook"] != WebhookDelivery.RETRYING
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = JobTask.model_validate(event)
    return composition.container().notify.notify(task.job_id).model_dump(mode="json")
