"""Dispatch: send a recorded job upstream exactly once, within the cap on concurrent tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from fluxrelay.domain.errors import (
    AmbiguousSubmitError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from fluxrelay.domain.jobs import JobError, JobItem, utcnow
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import JobStore, SlotPool, Upstream
from fluxrelay.observability import MetricName, count, logger
from fluxrelay.settings import Settings

if TYPE_CHECKING:
    from fluxrelay.models.wire import GenerationRequest

Clock = Callable[[], datetime]

# The fields we never forward: we implement sync mode and base64 ourselves, and always want
# URLs upstream so outputs can be streamed into our bucket.
_GATEWAY_ONLY_FIELDS = ("enable_sync_mode", "enable_base64_output")


@dataclass
class Dispatcher:
    """Submits a job upstream exactly once, within the global cap on concurrent upstream tasks."""

    lifecycle: JobLifecycle
    store: JobStore
    upstream: Upstream
    slots: SlotPool
    settings: Settings
    clock: Clock = utcnow

    def dispatch(
        self, job: JobItem, request: GenerationRequest, *, requeue_if_unsent: bool = False
    ) -> JobItem:
        """Returns the job with `upstream_id` set, or without one when it stays queued (no slot
        is free, or, with `requeue_if_unsent` for jobs the workflow dispatches, the upstream was
        certainly not reached: connection refused, 429) or when the submit may have reached the
        upstream without an answer (it then awaits adoption, see PollService); or as it now is
        when it ended before it could be sent (cancelled). Other failures fail the job and are
        raised."""
        if not self.slots.acquire(job.job_id) and not (self.reap() and self.slots.acquire(job.job_id)):
            logger.info("upstream concurrency cap reached; job queued")
            count(MetricName.DISPATCH_DEFERRED)
            return job
        if not self.store.claim(job.job_id, "dispatched_at", self.clock()):
            current = self.store.get(job.job_id)
            if current is not None and current.status.terminal:
                # Cancelled (or timed out) while queued: never sent, never billed.
                self.slots.release(job.job_id)
                return current
            # A previous attempt got as far as sending (e.g. the function died before recording
            # the upstream id): the task may exist upstream, so never send it again; the job
            # waits for the upstream's webhook to adopt it (PollService).
            logger.warning("an earlier submit attempt did not finish; awaiting adoption")
            return self.lifecycle.load(job.job_id)
        payload = request.upstream_payload()
        for field in _GATEWAY_ONLY_FIELDS:
            payload.pop(field, None)
        try:
            task = self.upstream.submit(payload, webhook=self.lifecycle.push_url(job))
        except (UpstreamUnavailableError, UpstreamRateLimitedError) as exc:
            count(MetricName.UPSTREAM_ERRORS)
            if not requeue_if_unsent:
                self._record_failure(job, exc)
                raise
            # Nothing was created upstream: undo the claim and the slot, try again next poll.
            logger.warning("upstream not reachable; job stays queued", extra={"reason": exc.message})
            self.store.update(job.job_id, dispatched_at=None)
            self.slots.release(job.job_id)
            return job
        except AmbiguousSubmitError as exc:
            # The task may exist (and be billed): keep its slot and wait for its webhook.
            logger.warning("upstream submit ambiguous; awaiting adoption", extra={"reason": exc.message})
            return self.lifecycle.load(job.job_id)
        except UpstreamError as exc:
            count(MetricName.UPSTREAM_ERRORS)
            self._record_failure(job, exc)
            raise
        now = self.clock()
        logger.info("job submitted", extra={"upstream_id": task.id, "num_images": request.num_images})
        return self.store.update(
            job.job_id,
            upstream_id=task.id,
            upstream_status=task.status,
            submitted_at=now,
            deadline_at=self.lifecycle.deadline(now, job.cancel_after_at),
        )

    def reap(self) -> int:
        """Free the slots of jobs that ended without reaching Notify (a workflow that died or
        timed out as a whole); without this a leaked slot would block the queue for good."""
        stale = [held for held in self.slots.holders() if self._is_finished_or_gone(held)]
        for job_id in stale:
            logger.warning("released the upstream slot of a finished job", extra={"stale_job_id": job_id})
            self.slots.release(job_id)
        return len(stale)

    def _is_finished_or_gone(self, job_id: str) -> bool:
        job = self.store.get(job_id)
        return job is None or job.status.terminal

    def _record_failure(self, job: JobItem, exc: UpstreamError) -> None:
        if isinstance(exc, UpstreamRejectedError):
            error = JobError(type="upstream_rejected", message=exc.message)
        elif isinstance(exc, UpstreamRateLimitedError):
            error = JobError(type="upstream_rate_limited", message=exc.message, retryable=True)
        else:
            error = JobError(type="upstream_unavailable", message=exc.message, retryable=exc.retryable)
        self.lifecycle.fail(job.job_id, error)
        self.slots.release(job.job_id)
        logger.info("upstream submit failed", extra={"error_type": error.type})
