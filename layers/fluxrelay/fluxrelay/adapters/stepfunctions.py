"""`Workflow` on Step Functions: executions named by the job id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import LazyClient, error_code
from fluxrelay.domain.ports import ExecutionStatus
from fluxrelay.models.workflow import WakeOutput, WakeRoute, WorkflowStart


class StepFunctionsWorkflow:
    """Starts a state machine; the execution is named by the job id, so a second start for the
    same job cannot create a second execution."""

    def __init__(
        self,
        state_machine_arn: str,
        client: Any | None = None,
        *,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        """Give `client`, or `client_factory` to get one at the first call (a task that never
        touches a workflow then never creates it); with neither, a default client is made then."""
        self._arn = state_machine_arn
        self._lazy_client = LazyClient("stepfunctions", client, client_factory)

    @property
    def _client(self) -> Any:
        return self._lazy_client.made

    def start(self, start: WorkflowStart, name: str | None = None) -> str:
        name = name or start.job_id
        try:
            out = self._client.start_execution(
                stateMachineArn=self._arn, name=name, input=start.model_dump_json()
            )
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            return self._arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return str(out["executionArn"])

    def status(self, execution_arn: str) -> ExecutionStatus:
        try:
            described = self._client.describe_execution(executionArn=execution_arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return ExecutionStatus.MISSING
            raise
        return ExecutionStatus(described["status"])

    def stop(self, execution_arn: str) -> None:
        try:
            self._client.stop_execution(executionArn=execution_arn, cause="stuck past its job's deadline")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise

    def wake(self, token: str, route: WakeRoute = WakeRoute.CHECK) -> bool:
        try:
            self._client.send_task_success(taskToken=token, output=WakeOutput(next=route).model_dump_json())
        except ClientError as exc:
            # The wait already ended (a timeout, another wake) or its execution is gone.
            if exc.response["Error"]["Code"] in _SPENT_TOKEN_ERRORS:
                return False
            raise
        return True


_SPENT_TOKEN_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
