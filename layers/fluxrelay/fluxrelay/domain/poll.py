"""Poll: one check of the upstream result, and where the workflow goes next."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fluxrelay.domain import usage
from fluxrelay.domain.dispatch import Dispatcher
from fluxrelay.domain.errors import (
    UnknownTaskError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from fluxrelay.domain.jobs import JobError, JobItem, JobStatus, utcnow
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import JobStore, Upstream
from fluxrelay.models.tasks import CheckResultOutput
from fluxrelay.models.workflow import ResultRoute
from fluxrelay.observability import MetricName, count, logger
from fluxrelay.settings import Settings

Clock = Callable[[], datetime]


@dataclass
class PollService:
    """One check of the upstream result, and the wait before the next one."""

    lifecycle: JobLifecycle
    store: JobStore
    upstream: Upstream
    dispatcher: Dispatcher
    settings: Settings
    clock: Clock = utcnow

    def check(self, job_id: str) -> CheckResultOutput:
        job = self.lifecycle.load(job_id)
        late = self.lifecycle.awaits_late_outputs(job)
        if job.status.terminal and not late:
            return _ended(job)  # a check of a finished job changes nothing
        self.lifecycle.checking(job)
        now = self.clock()
        if job.deadline_at and now >= job.deadline_at:
            return _ended(job) if late else self._time_out(job, now)
        if not job.upstream_id:
            if job.dispatched_at is None:
                return self._dispatch_queued(job, now)
            return self._await_adoption(job, now)
        usage.count("upstream_polls")
        try:
            result = self.upstream.get_result(job.upstream_id)
        except UnknownTaskError:
            if late:
                return _ended(job)
            error = JobError(type="upstream_task_gone", message="the upstream no longer knows this task")
            return _ended(self.lifecycle.fail(job_id, error))
        except (UpstreamUnavailableError, UpstreamRateLimitedError) as exc:
            # The client already retried with backoff; keep polling until the deadline instead of
            # failing a paid job because the upstream had a bad minute.
            count(MetricName.UPSTREAM_ERRORS)
            logger.warning("upstream result unavailable, will poll again", extra={"reason": exc.message})
            return self._again(job, now)

        if result.is_completed:
            stored = self.lifecycle.record_result(job, result)
            # The job stays `processing` until StoreOutputs has copied the outputs.
            status = (stored or job).status.public
            return CheckResultOutput(
                job_id=job_id, status=status, next=ResultRoute.STORE_OUTPUTS, wait_seconds=0
            )
        if result.is_failed:
            if late:
                return _ended(job)
            message = result.error or f"the upstream task ended with status {result.status}"
            return _ended(
                self.lifecycle.fail(job_id, JobError(type=f"upstream_{result.status}", message=message))
            )
        if result.status == "processing" and job.status is JobStatus.CREATED:
            self.lifecycle.move(
                job_id, JobStatus.PROCESSING, processing_at=now, upstream_status=result.status
            )
        return self._again(job, now)

    def _dispatch_queued(self, job: JobItem, now: datetime) -> CheckResultOutput:
        """A job waiting for an upstream slot: try to submit it now."""
        # Only a queued job needs its request again: most checks never build the submit body's models.
        from fluxrelay.models.wire import GenerationRequest

        request = GenerationRequest.model_validate(job.request, context=self.settings.validation_context())
        try:
            dispatched = self.dispatcher.dispatch(job, request, requeue_if_unsent=True)
        except UpstreamError:
            return _ended(self.lifecycle.load(job.job_id))  # the dispatcher recorded the failure
        if dispatched.status.terminal:
            return _ended(dispatched)  # cancelled while queued
        if dispatched.upstream_id:
            wait = self.settings.first_poll_seconds(request.num_images)
            return _waiting(dispatched, wait)
        return _waiting(job, self.settings.poll_interval_seconds)

    def _await_adoption(self, job: JobItem, now: datetime) -> CheckResultOutput:
        """A submit that may have reached the upstream unanswered (a timeout after sending, a
        5xx, a function that died mid-submit) is never resent: the job waits for the upstream's
        webhook naming it (PushService adopts that task), for at most the adoption window."""
        assert job.dispatched_at is not None
        window_end = job.dispatched_at + timedelta(seconds=self.settings.ambiguous_submit_window_seconds)
        if now >= window_end:
            error = JobError(
                type="ambiguous_submit",
                message=(
                    "the upstream did not confirm the submission and no task reported back within "
                    f"{self.settings.ambiguous_submit_window_seconds} s; it was not resent. Submit "
                    "again only if you accept a possible second charge."
                ),
            )
            return _ended(self.lifecycle.fail(job.job_id, error))
        remaining = math.ceil((window_end - now).total_seconds())
        return _waiting(job, min(self.settings.poll_max_interval_seconds, remaining))

    def next_wait(self, polls: int, job: JobItem, now: datetime) -> int:
        """Exponential backoff from the poll interval, capped, and never past the deadline."""
        wait = min(
            self.settings.poll_interval_seconds * 2 ** max(polls - 1, 0),
            self.settings.poll_max_interval_seconds,
        )
        if job.deadline_at:
            wait = min(wait, max(0, math.ceil((job.deadline_at - now).total_seconds())))
        return int(wait)

    def _again(self, job: JobItem, now: datetime) -> CheckResultOutput:
        polls = job.polls + 1
        self.store.update(job.job_id, polls=polls)
        return _waiting(job, self.next_wait(polls, job, now))

    def _time_out(self, job: JobItem, now: datetime) -> CheckResultOutput:
        if job.cancel_after_at and now >= job.cancel_after_at:
            granted = round((job.cancel_after_at - job.created_at).total_seconds())
            message = f"the job did not finish within its Cancel-After of {granted} s"
        else:
            message = f"the job did not finish within {self.settings.job_deadline_seconds} s"
        error = JobError(type="timeout", message=message, retryable=True)
        return _ended(self.lifecycle.finish(job.job_id, JobStatus.TIMEOUT, error=error))


def _waiting(job: JobItem, wait_seconds: int) -> CheckResultOutput:
    # The wait is a parked task timing out after `wait_seconds`: at least 1 s on AWS.
    return CheckResultOutput(
        job_id=job.job_id, status=job.status.public, next=ResultRoute.WAIT, wait_seconds=max(1, wait_seconds)
    )


def _ended(job: JobItem) -> CheckResultOutput:
    """A job that has ended (or, after a refused write, whatever it now is)."""
    if not job.status.terminal:
        return _waiting(job, 1)
    return CheckResultOutput(
        job_id=job.job_id, status=job.status.value, next=ResultRoute.NOTIFY, wait_seconds=0
    )
