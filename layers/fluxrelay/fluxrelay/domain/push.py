"""Push: the upstream's webhook for a job wakes the job's workflow at once.

A verified push is WaveSpeed's own word (its signature over the body, within 300 s): a
completed result it carries is recorded on the job, and the woken workflow stores its outputs
without a second GET of the same result. Any other push only wakes a check, which reads the
upstream itself. The poll stays the safety net: a lost push costs one poll interval, and a
duplicate, late or stale push costs at most one check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fluxrelay.domain.jobs import JobFields
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.observability import logger


class PushOutcome(StrEnum):
    WOKEN = "woken"  # the parked workflow was woken
    NOTED = "noted"  # the workflow is not parked (it is checking); it will not park before checking
    IGNORED = "ignored"  # the job has ended, or the push names another task


@dataclass
class PushService:
    lifecycle: JobLifecycle

    def receive(self, job_id: str, task: UpstreamPrediction) -> PushOutcome:
        """Take a verified upstream webhook for `job_id`. Unknown job: NotFoundError."""
        job = self.lifecycle.load(job_id)
        if job.status.terminal:
            return PushOutcome.IGNORED
        adopted: JobFields = {}
        if job.upstream_id is None:
            if job.dispatched_at is None:
                return PushOutcome.IGNORED  # never sent upstream: no task of ours can have ended
            # The task WaveSpeed created for this job's submit (its URL names the job, its
            # signature proves the sender): a push that overtook the submit's own answer, or a
            # submit that failed ambiguously. Adopt it: one charge, and the result is kept.
            adopted = {"upstream_id": task.id, "upstream_status": task.status}
            logger.info("adopted the upstream task named by its webhook", extra={"upstream_id": task.id})
        elif job.upstream_id != task.id:
            logger.warning(
                "upstream webhook names another task; ignored",
                extra={"upstream_id": job.upstream_id, "pushed_task": task.id[:64]},
            )
            return PushOutcome.IGNORED
        if task.is_completed:
            woken = self.lifecycle.wake_finished(job, task, **adopted)
        else:
            woken = self.lifecycle.wake(job_id, **adopted)
        return PushOutcome.WOKEN if woken else PushOutcome.NOTED
