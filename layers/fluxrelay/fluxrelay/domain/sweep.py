"""Sweep: nothing left behind. Finds every non-terminal job whose workflow is not running (the
function died between recording the job and starting it; the execution failed, timed out or was
aborted) or that is past its deadline plus a grace period, and resumes it or ends it; and every
finished job whose workflow died before notifying it, and gives it an execution that notifies.

Reads the index of active jobs (a job leaves it only once notified), never the table; each
run looks at a bounded batch. Idempotent and safe to run twice at once: a resume is claimed with a
conditional write of the job's resume counter and started under a name derived from it, so two
sweepers that see the same dead job start one execution between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fluxrelay.domain.dispatch import Dispatcher
from fluxrelay.domain.jobs import JobError, JobItem, JobStatus, utcnow
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import ExecutionStatus, JobStore
from fluxrelay.models.tasks import SweepOutput
from fluxrelay.observability import logger
from fluxrelay.settings import Settings

Clock = Callable[[], datetime]


@dataclass
class SweepService:
    lifecycle: JobLifecycle
    store: JobStore
    dispatcher: Dispatcher
    settings: Settings
    clock: Clock = utcnow
    _seen: set[str] = field(default_factory=set)

    def sweep(self) -> SweepOutput:
        now = self.clock()
        grace = timedelta(seconds=self.settings.sweep_grace_seconds)
        out = SweepOutput()
        for job_id in self.store.active(limit=self.settings.sweep_batch_size):
            out.examined += 1
            job = self.store.get(job_id)
            # Young or just-moved jobs belong to their own workflow (or to the call creating them).
            if job is None or now - job.updated_at < grace:
                continue
            # An upload that never arrives is ended by its own expiry timer.
            if job.status is JobStatus.WAITING_UPLOAD:
                continue
            state = self.lifecycle.execution_status(job)
            if job.status.terminal:
                # Finished, not notified yet: a running workflow is still on it (its webhook
                # retries may take hours); a dead one left it unnotified. A new execution's first
                # check sees the end and runs Notify, which sends only what is still due: the SNS
                # message unless published, the webhook (same webhook-id) unless delivered.
                if state is not ExecutionStatus.RUNNING and self._rescue(job, state, False, now):
                    out.notified += 1
                continue
            overdue = job.deadline_at is not None and now > job.deadline_at + grace
            if state is ExecutionStatus.RUNNING and not overdue:
                continue
            if self._rescue(job, state, overdue, now):
                if overdue:
                    out.ended += 1
                else:
                    out.resumed += 1
        out.slots_released = self.dispatcher.reap()
        return out

    def _rescue(self, job: JobItem, state: ExecutionStatus, overdue: bool, now: datetime) -> bool:
        """Resume the job's workflow, or end the job first when it is overdue (its new
        execution then only notifies). False when another sweeper got there first."""
        if not self.lifecycle.claim_resume(job):
            return False
        if state is ExecutionStatus.RUNNING:
            self.lifecycle.stop_execution(job)  # stuck past its deadline: it will never end it
        if overdue:
            error = JobError(
                type="timeout",
                message=f"the job did not finish within {self.settings.job_deadline_seconds} s",
            )
            self.lifecycle.finish(job.job_id, JobStatus.TIMEOUT, error=error)
        logger.warning(
            "sweeper rescued a job",
            extra={"rescued_job_id": job.job_id, "execution": state.value, "overdue": overdue},
        )
        self.lifecycle.resume(job)
        return True
