"""The contract between the Python code and the state machines: what starts and wakes a workflow,
and the values it routes on (each task's own input and output: `fluxrelay.models.tasks`).

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
