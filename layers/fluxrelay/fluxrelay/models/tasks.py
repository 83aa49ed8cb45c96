"""Each workflow task's typed input and output (the event its handler validates, the dict it
returns to the state machine).

Apart from `workflow.py`, whose start and wake models the API and the upload trigger also build:
only the task functions build these.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fluxrelay.models.workflow import ResultRoute, WebhookDelivery


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
