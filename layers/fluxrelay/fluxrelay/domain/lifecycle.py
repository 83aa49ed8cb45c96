"""The job lifecycle: the one place that creates a job, starts its workflows and moves its status.

Every use case goes through `JobLifecycle`, so a job item (its TTL, its deadline, its result URL)
is built in one way, every status change is the conditional write of `allowed_sources`, and
every workflow is started with the same typed input, named by the job id (a second start for
the same job cannot create a second execution).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Unpack

from fluxrelay.domain.errors import NotFoundError
from fluxrelay.domain.jobs import (
    JobError,
    JobFields,
    JobItem,
    JobStatus,
    OutputItem,
    WebhookState,
    new_job_id,
    utcnow,
)
from fluxrelay.domain.ports import ExecutionStatus, JobStore, Workflow
from fluxrelay.models.workflow import WakeRoute, WorkflowStart
from fluxrelay.settings import CancelledOutputs, Settings

if TYPE_CHECKING:
    from fluxrelay.models.upstream import UpstreamPrediction
    from fluxrelay.models.wire import GenerationRequest

Clock = Callable[[], datetime]

# Our public routes that name a job: its result (`urls.get`) and the upstream's push for it.
RESULT_PATH = "/api/v3/predictions/{job_id}/result"
PUSH_PATH = "/api/v3/upstream/webhooks/{job_id}"


@dataclass
class JobLifecycle:
    """Creates jobs, starts their workflows and moves their status.

    `expiry` is the upload-expiry timer; None when it is not deployed (jobs waiting for an
    upload then never expire).
    """

    store: JobStore
    generation: Workflow
    settings: Settings
    expiry: Workflow | None = None
    clock: Clock = utcnow

    # --- create -------------------------------------------------------------------------
    def create(
        self,
        owner: str,
        request: GenerationRequest | None,
        *,
        source: Literal["api", "s3"] = "api",
        status: JobStatus = JobStatus.CREATED,
        job_id: str | None = None,
        webhook_url: str | None = None,
        result_base_url: str = "",
        input_key: str | None = None,
        error: JobError | None = None,
        cancel_after_seconds: int | None = None,
    ) -> JobItem:
        """Write a new job item (ConflictError if the id exists). `request` is None only for a
        job recorded as failed because its parameters could not be read. `cancel_after_seconds`
        is the caller's own deadline, capped by the operator's."""
        now = self.clock()
        jid = job_id or new_job_id()
        cancel_after_at = None
        if cancel_after_seconds is not None:
            cap = min(cancel_after_seconds, self.settings.job_deadline_seconds)
            cancel_after_at = now + timedelta(seconds=cap)
        job = JobItem(
            job_id=jid,
            owner=owner,
            source=source,
            request=request.model_dump(mode="json") if request is not None else {},
            status=status,
            created_at=now,
            updated_at=now,
            finished_at=now if status.terminal else None,
            error=error,
            webhook=WebhookState(url=webhook_url) if webhook_url else None,
            result_url=result_base_url.rstrip("/") + RESULT_PATH.format(job_id=jid)
            if result_base_url
            else "",
            input_key=input_key,
            deadline_at=None if status.terminal else self.deadline(now, cancel_after_at),
            cancel_after_at=cancel_after_at,
            expires_at=int((now + timedelta(days=self.settings.job_ttl_days)).timestamp()),
        )
        self.store.create(job)
        return job

    def deadline(self, now: datetime, cancel_after_at: datetime | None) -> datetime:
        """The deadline of a phase that starts `now`: the operator's, or the caller's if sooner."""
        operator = now + timedelta(seconds=self.settings.job_deadline_seconds)
        return min(operator, cancel_after_at) if cancel_after_at else operator

    # --- read ---------------------------------------------------------------------------
    def load(self, job_id: str) -> JobItem:
        job = self.store.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def owned(self, owner: str, job_id: str) -> JobItem:
        """The job if `owner` owns it; otherwise the same 404 as for an unknown id."""
        job = self.store.get(job_id) if _looks_like_id(job_id) else None
        if job is None or job.owner != owner:
            raise NotFoundError("prediction not found")
        return job

    # --- move ---------------------------------------------------------------------------
    def move(self, job_id: str, to: JobStatus, **fields: Unpack[JobFields]) -> JobItem | None:
        """Move the job to `to` if its status allows it; None when a late or duplicate event
        lost the race (the status is unchanged)."""
        return self.store.transition(job_id, to, **fields)

    def finish(
        self,
        job_id: str,
        to: JobStatus,
        *,
        error: JobError | None = None,
        outputs: list[OutputItem] | None = None,
        withheld_outputs: int = 0,
    ) -> JobItem:
        """End the job as `to` (a terminal status). Returns the job as it now is: the finished
        one, or the job as another writer left it when it had already moved on."""
        # A finished job has no wait left to wake: its workflow only notifies from here.
        fields: JobFields = {"finished_at": self.clock(), "wake_token": None, "wake_requested_at": None}
        if error is not None:
            fields["error"] = error
        if outputs is not None:
            fields["outputs"] = outputs
        if withheld_outputs:
            fields["withheld_outputs"] = withheld_outputs
        updated = self.store.transition(job_id, to, **fields)
        return updated or self.load(job_id)

    def fail(self, job_id: str, error: JobError) -> JobItem:
        return self.finish(job_id, JobStatus.FAILED, error=error)

    def notified(self, job_id: str) -> None:
        """Nothing more is due for this finished job: the sweeper stops looking at it. Until
        then a finished job whose workflow died before notifying it is given a new one."""
        self.store.mark_notified(job_id)

    def cancel(self, job: JobItem) -> JobItem | None:
        """End `job` as `cancelled` unless it has ended already (then None).

        Whether the upstream may bill it is read from `dispatched_at`: a dispatch claims it only
        while the job is unfinished, so once this write has won, no submit can follow it."""
        if job.status.terminal:
            return None
        sent = job.dispatched_at is not None
        moved = self.store.transition(
            job.job_id, JobStatus.CANCELLED, finished_at=self.clock(), error=self._cancelled(sent)
        )
        if moved is not None and (moved.dispatched_at is not None) != sent:
            # It was dispatched since `job` was read.
            moved = self.store.update(job.job_id, error=self._cancelled(not sent))
        return moved

    def awaits_late_outputs(self, job: JobItem) -> bool:
        """A job cancelled while it ran upstream, whose images the operator keeps: its workflow
        follows the upstream task to the end before notifying."""
        return (
            job.status is JobStatus.CANCELLED
            and self.settings.cancelled_outputs is CancelledOutputs.KEEP
            and job.upstream_id is not None
            and not job.upstream_outputs
        )

    def keep_outputs(self, job_id: str, outputs: list[OutputItem]) -> JobItem:
        """Attach the images of a cancelled job whose images the operator keeps (its status
        stays `cancelled`)."""
        return self.store.update(job_id, outputs=outputs)

    def _cancelled(self, sent: bool) -> JobError:
        if not sent:
            return JobError(
                type="cancelled", message="cancelled before it was sent upstream; nothing is billed"
            )
        kept = (
            "; its images are kept if they arrive"
            if self.settings.cancelled_outputs is CancelledOutputs.KEEP
            else "; images that arrive later are discarded"
        )
        return JobError(
            type="cancelled",
            message="cancelled while running upstream, which has no cancel call: WaveSpeed may still bill it"
            + kept,
        )

    def push_url(self, job: JobItem) -> str | None:
        """The URL the upstream reports this job's task to (its `?webhook=`): our public base
        URL, the one the job's result URL was built on. None when the job has no public URL."""
        suffix = RESULT_PATH.format(job_id=job.job_id)
        if not job.result_url.endswith(suffix):
            return None
        return job.result_url.removesuffix(suffix) + PUSH_PATH.format(job_id=job.job_id)

    # --- workflows ----------------------------------------------------------------------
    def start_generation(self, job: JobItem, wait_seconds: int) -> JobItem:
        """Start the generation workflow (first check after `wait_seconds`) and record it."""
        # The first wait is a parked task whose timeout is this wait: at least 1 s on AWS.
        start = WorkflowStart(job_id=job.job_id, wait_seconds=max(1, wait_seconds))
        arn = self.generation.start(start)
        return self.store.update(job.job_id, execution_arn=arn)

    def notify_finished(self, job_id: str) -> None:
        """Report a job that ended before its workflow ran: the generation workflow on a
        finished job checks once, sees the terminal status and runs Notify (SNS + webhook with
        its retries). Named by the job id, so it can never run twice for one job. Its first
        wait is the shortest a parked wait can be (1 s). Recorded on the job, so the sweeper
        sees it running and starts no second one."""
        arn = self.generation.start(WorkflowStart(job_id=job_id, wait_seconds=1))
        self.store.update(job_id, execution_arn=arn)

    # --- the wakeable wait ----------------------------------------------------------------
    # The workflow parks between checks in a wait that holds a task token; the token is stored
    # on the job. Whoever learns that a check is due (the upstream's push, a cancel) records the
    # request and sends the token back. Both sides write first and read the other's mark in the
    # same conditional write, so whichever comes second sees the first: no wake-up is lost when
    # the push arrives before the workflow has parked, and a duplicate wake is harmless.
    def wake(self, job_id: str, **fields: Unpack[JobFields]) -> bool:
        """Ask for a check of the job now: its parked workflow wakes at once, or (not parked
        yet) does not park. True when a parked wait was woken. `fields` are written in the same
        write. Unknown job: NotFoundError."""
        fields["wake_requested_at"] = self.clock()
        return self._woken(self.store.update(job_id, **fields))

    def wake_finished(self, job: JobItem, result: UpstreamPrediction, **fields: Unpack[JobFields]) -> bool:
        """`wake` for a job whose upstream task completed, told by the upstream's signed push:
        the result is recorded in the same write, and the woken wait goes straight to storing
        the outputs, with no second GET. Its status moves only when StoreOutputs has them."""
        recorded = _result_fields(result)
        recorded.update(fields)
        recorded["wake_requested_at"] = self.clock()
        return self._woken(self.store.update(job.job_id, **recorded))

    def record_result(self, job: JobItem, result: UpstreamPrediction) -> JobItem | None:
        """Record a check's completed result on `job` (what StoreOutputs copies); a job still
        `created` moves to `processing`. None when it left `created` since `job` was read."""
        recorded = _result_fields(result)
        if job.status is JobStatus.CREATED:
            recorded["processing_at"] = self.clock()
            return self.move(job.job_id, JobStatus.PROCESSING, **recorded)
        return self.store.update(job.job_id, **recorded)

    def park(self, job_id: str, token: str) -> bool:
        """Store the token of the workflow's wait; wake it at once when a check is already due
        (asked for since the last check, or the deadline passed). True then. A finished job's
        wait runs its course: a cancelled job may be waiting for late outputs."""
        job = self.store.update(job_id, wake_token=token)
        due = job.wake_requested_at is not None or self._past_deadline(job)
        return due and self.generation.wake(token, self._route(job))

    def _woken(self, job: JobItem) -> bool:
        return job.wake_token is not None and self.generation.wake(job.wake_token, self._route(job))

    def _route(self, job: JobItem) -> WakeRoute:
        """Where a woken wait goes: to StoreOutputs when the completed result is on the job
        already (only the push records one before a wait ends), as a check that found it would;
        StoreOutputs knows what a job that has ended meanwhile keeps. Else (and past the
        deadline, which the check enforces) to a check."""
        if job.upstream_outputs and not self._past_deadline(job):  # only a completed result has any
            return WakeRoute.STORE_OUTPUTS
        return WakeRoute.CHECK

    def _past_deadline(self, job: JobItem) -> bool:
        return job.deadline_at is not None and self.clock() >= job.deadline_at

    def checking(self, job: JobItem) -> None:
        """A check starts: its token is spent and a pending wake request is answered by it."""
        if job.wake_token or job.wake_requested_at:
            self.store.update(job.job_id, wake_token=None, wake_requested_at=None)

    # --- rescue (the sweeper) -------------------------------------------------------------
    def execution_status(self, job: JobItem) -> ExecutionStatus:
        if not job.execution_arn:
            return ExecutionStatus.MISSING
        return self.generation.status(job.execution_arn)

    def claim_resume(self, job: JobItem) -> bool:
        return self.store.claim_resume(job.job_id, job.resumes)

    def resume(self, job: JobItem) -> JobItem:
        """Start the job's workflow again, under a new name (the dead execution keeps its own):
        its first check carries on from whatever the job item says. Call after `claim_resume`;
        the name derives from the claimed count, so a repeated call starts nothing new."""
        name = f"{job.job_id}-r{job.resumes + 1}"
        arn = self.generation.start(WorkflowStart(job_id=job.job_id, wait_seconds=1), name=name)
        return self.store.update(job.job_id, execution_arn=arn)

    def stop_execution(self, job: JobItem) -> None:
        if job.execution_arn:
            self.generation.stop(job.execution_arn)

    def start_expiry(self, job_id: str, wait_seconds: int) -> bool:
        """Start the upload-expiry timer; False when no timer is deployed."""
        if self.expiry is None:
            return False
        self.expiry.start(WorkflowStart(job_id=job_id, wait_seconds=wait_seconds))
        return True


def _result_fields(result: UpstreamPrediction) -> JobFields:
    """What a completed upstream result records on its job."""
    return {
        "upstream_status": result.status,
        "upstream_outputs": list(result.outputs),
        "nsfw": list(result.has_nsfw_contents),
        "inference_ms": result.inference_ms,
    }


def _looks_like_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
