"""Push: the upstream's webhook for a job wakes the job's workflow, so it checks at once.

The push is a hint, never the truth: the woken check reads the upstream result itself, so a
lost push costs one poll interval, and a duplicate, late or stale push costs at most one check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import JobStore
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.observability import logger


class PushOutcome(StrEnum):
    WOKEN = "woken"  # the parked workflow was woken
    NOTED = "noted"  # the workflow is not parked (it is checking); it will not park before checking
    IGNORED = "ignored"  # the job has ended, or the push names another task


@dataclass
class PushService:
    lifecycle: JobLifecycle
    store: JobStore

    def receive(self, job_id: str, task: UpstreamPrediction) -> PushOutcome:
        """Take a verified upstream webhook for `job_id`. Unknown job: NotFoundError."""
        job = self.lifecycle.load(job_id)
        if job.status.terminal:
            return PushOutcome.IGNORED
        if job.upstream_id is None:
            if job.dispatched_at is None:
                return PushOutcome.IGNORED  # never sent upstream: no task of ours can have ended
            # The task WaveSpeed created for this job's submit (its URL names the job, its
            # signature proves the sender): a push that overtook the submit's own answer, or a
            # submit that failed ambiguously. Adopt it: one charge, and the result is kept.
            self.store.update(job_id, upstream_id=task.id, upstream_status=task.status)
            logger.info("adopted the upstream task named by its webhook", extra={"upstream_id": task.id})
        elif job.upstream_id != task.id:
            logger.warning(
                "upstream webhook names another task; ignored",
                extra={"upstream_id": job.upstream_id, "pushed_task": task.id[:64]},
            )
            return PushOutcome.IGNORED
        return PushOutcome.WOKEN if self.lifecycle.wake(job_id) else PushOutcome.NOTED
