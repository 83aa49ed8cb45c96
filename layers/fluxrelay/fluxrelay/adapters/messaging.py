"""SNS notifications and the Step Functions workflow starter."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.models.notices import JobNotice
from fluxrelay.models.workflow import WorkflowStart


class SnsNotifier:
    """Publishes job events; attributes carry status/owner/source for subscription filter policies."""

    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self._topic = topic_arn
        self._client = client or aws_client("sns")

    def publish(self, notice: JobNotice) -> None:
        self._client.publish(
            TopicArn=self._topic,
            Message=json.dumps(notice.model_dump(mode="json")),
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in notice.attributes().items()
            },
        )


class StepFunctionsWorkflow:
    """Starts a state machine; the execution is named by the job id, so a second start for the
    same job cannot create a second execution."""

    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self._arn = state_machine_arn
        self._client = client or aws_client("stepfunctions")

    def start(self, start: WorkflowStart) -> str:
        job_id = start.job_id
        try:
            out = self._client.start_execution(
                stateMachineArn=self._arn, name=job_id, input=start.model_dump_json()
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            return self._arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
        return str(out["executionArn"])
