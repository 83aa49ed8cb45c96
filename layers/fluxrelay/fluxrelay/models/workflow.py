"""The contract between the Python tasks and the state machines: typed task input and output.

Step Functions routes on plain strings (`Choice` rules with `StringEquals`); the values it routes
on are the `StrEnum`s below, so the handlers, the services and the ASL tests share one spelling.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ResultRoute(StrEnum):
    """Where the generation workflow goes after `CheckResult` (its `IsFinished` choice)."""

    WAIT = "wait"  # not finished: wait `wait_seconds`, check again
    STORE_OUTPUTS = "store_outputs"  # the upstream finished: copy its outputs into our bucket
    NOTIFY = "notify"  # the job has ended (failed, timed out, or already completed)


class WakeRoute(StrEnum):
    """Where a woken wait goes (the `Woken` choice after `WaitForResult`)."""

    CHECK = "check"  # check the upstream result now
    # The upstream's signed push already recorded the completed result: store its outputs, with
    # no second GET of a result we hold.
    STORE_OUTPUTS = "store_outputs"


class WakeOutput(BaseModel):
    """What a wake hands the parked wait (the task's output, at `$.woken`)."""

    next: WakeRoute


class WebhookDelivery(StrEnum):
    """A job's webhook delivery state, as stored in the job and as `Notify` reports it; the
    workflow waits and calls `Notify` again while it is `retrying`."""

    NONE = "none"  # the job has no webhook (reported only, never stored)
    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    GAVE_UP = "gave_up"


# The state transitions (states entered, what Step Functions bills) each task invocation of the
# generation workflow stands for, so that a job's count adds up from its invocations:
# WaitForResult (ParkJob, the wakeable wait) = WaitForResult + Woken, however the wait ended;
# CheckResult = CheckResult + IsFinished;
# StoreOutputs and MarkFailed = 1; Notify = Notify + WebhookRetry + either WaitBeforeRedelivery
# (then Notify again) or Done.
TASK_TRANSITIONS = {"WaitForResult": 2, "CheckResult": 2, "StoreOutputs": 1, "MarkFailed": 1, "Notify": 3}


class WorkflowStart(BaseModel):
    """Input of an execution of either state machine; the execution is named by the job id."""

    job_id: str
    wait_seconds: int = Field(ge=0)  # the first Wait state's duration


class JobTask(BaseModel):
    """Input of a task that acts on one job (CheckResult, StoreOutputs, Notify, ExpireUpload)."""

    job_id: str


class ParkInput(JobTask):
    """Input of ParkJob, the wakeable wait: the task token its execution waits on."""

    token: str = Field(min_length=1)


class CaughtError(BaseModel):
    # The shape Step Functions puts at the Catch ResultPath.
    Error: str = "States.TaskFailed"
    Cause: str = ""


class MarkFailedInput(JobTask):
    error: CaughtError = Field(default_factory=CaughtError)


class JobStatusOutput(BaseModel):
    """Output of StoreOutputs and MarkFailed: the job's status after the task."""

    job_id: str
    status: str


class CheckResultOutput(BaseModel):
    job_id: str
    status: str  # the job's stored status as a WaveSpeed client sees it (for the history)
    next: ResultRoute
    wait_seconds: int


class NotifyOutput(BaseModel):
    job_id: str
    attempt: int  # webhook attempts so far (stored in the job; reported for the execution history)
    webhook: WebhookDelivery
    wait_seconds: int


class SweepOutput(BaseModel):
    """What one sweeper run did (its function's output, for the logs)."""

    examined: int = 0
    resumed: int = 0
    ended: int = 0
    notified: int = 0  # finished jobs whose workflow died before notifying them, given a new one
    slots_released: int = 0


class ExpireUploadOutput(BaseModel):
    job_id: str
    status: str
    expired: bool
