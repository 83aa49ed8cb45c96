"""Notify: SNS for every finished job, and a signed webhook (retried by the workflow) when asked."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fluxrelay.domain.deliveries import Sent, WebhookDeliverer, attempt, give_up
from fluxrelay.domain.errors import JobStateError
from fluxrelay.domain.jobs import AttemptOutcome, JobItem, WebhookState, utcnow
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import JobStore, Notifier, SlotPool
from fluxrelay.models.notices import JobNotice
from fluxrelay.models.tasks import NotifyOutput
from fluxrelay.models.workflow import WebhookDelivery
from fluxrelay.observability import MetricName, count, count_job_finished, logger, milliseconds
from fluxrelay.settings import Settings

# The longest wait between two webhook attempts, whatever the backoff says.
_MAX_REDELIVERY_WAIT_SECONDS = 3600
# Each wait is drawn from [1 - _JITTER, 1] times the backoff, so that the webhooks that failed
# together in a receiver's outage do not all come back at the same second.
_JITTER = 0.5


@dataclass
class NotifyService:
    lifecycle: JobLifecycle
    store: JobStore
    slots: SlotPool
    notifier: Notifier
    deliverer: WebhookDeliverer
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    random: Callable[[], float] = random.random

    def notify(self, job_id: str) -> NotifyOutput:
        out = self._notify(job_id)
        if out.webhook is not WebhookDelivery.RETRYING:
            # The last Notify of the job (no redelivery follows): only now does it leave the
            # sweeper's index, so a workflow that dies before this point is resumed to notify.
            self.lifecycle.notified(job_id)
        return out

    def _notify(self, job_id: str) -> NotifyOutput:
        job = self.lifecycle.load(job_id)
        if not job.status.terminal:
            raise JobStateError(f"job {job_id} is {job.status.value}, not finished")
        self.slots.release(job_id)  # idempotent; frees the upstream slot for queued jobs
        if not job.sns_published:
            self.notifier.publish(_notice(job))
            job = self.store.update(job_id, sns_published=True)
            count_job_finished(job.status.value, job.job_id)  # once per job: its first Notify
        hook = job.webhook
        if hook is None:
            return NotifyOutput(job_id=job_id, attempt=0, webhook=WebhookDelivery.NONE, wait_seconds=0)
        if hook.state in (WebhookDelivery.DELIVERED, WebhookDelivery.GAVE_UP):
            return NotifyOutput(job_id=job_id, attempt=hook.attempts, webhook=hook.state, wait_seconds=0)
        now = self.clock()
        sent = self.deliverer.send(job, hook.url)
        after = self.deliverer.record(job_id, lambda current: self._after(current, now, sent), known=hook)
        if sent.ok and job.finished_at is not None:
            milliseconds(MetricName.WEBHOOK_LATENCY, (now - job.finished_at).total_seconds() * 1000)
        if not sent.ok:
            count(MetricName.WEBHOOK_FAILURES)
            logger.info(
                "webhook delivery failed",
                extra={"attempt": after.attempts, "reason": sent.error, "state": after.state},
            )
        wait = 0
        if after.next_retry_at is not None:
            wait = max(1, math.ceil((after.next_retry_at - now).total_seconds()))
        return NotifyOutput(job_id=job_id, attempt=after.attempts, webhook=after.state, wait_seconds=wait)

    def _after(self, hook: WebhookState, now: datetime, sent: Sent) -> WebhookState:
        """`hook` after the workflow's attempt `sent`: delivered, retried later, or given up."""
        if sent.ok:
            done = {"state": WebhookDelivery.DELIVERED, "delivered_at": now}
            return hook.with_attempt(attempt(hook, now, sent, "workflow", AttemptOutcome.DELIVERED), **done)
        if hook.state is WebhookDelivery.DELIVERED:
            # A replay got through meanwhile: this failure changes nothing.
            return hook.with_attempt(attempt(hook, now, sent, "workflow", AttemptOutcome.FAILED))
        span = self.settings.webhook_retry_span_seconds
        remaining = span - (now - (hook.first_attempt_at or now)).total_seconds()
        if sent.gone or remaining <= 0:
            reason = (
                "the receiver answered 410 Gone"
                if sent.gone
                else f"no delivery within the retry span of {span} s"
            )
            entry = attempt(hook, now, sent, "workflow", AttemptOutcome.GAVE_UP)
            return hook.with_attempt(entry, **give_up(now, reason))
        backoff = min(
            self.settings.webhook_retry_base_seconds * 2**hook.attempts, _MAX_REDELIVERY_WAIT_SECONDS
        )
        wait = min(max(1.0, backoff * (1 - _JITTER * self.random())), remaining)
        entry = attempt(
            hook, now, sent, "workflow", AttemptOutcome.WILL_RETRY, now + timedelta(seconds=math.ceil(wait))
        )
        return hook.with_attempt(entry, state=WebhookDelivery.RETRYING)


def _notice(job: JobItem) -> JobNotice:
    return JobNotice(
        job_id=job.job_id,
        status=job.status.value,
        owner=job.owner,
        source=job.source,
        outputs=[o.key for o in job.outputs],
        error=job.error,
        created_at=job.created_at.isoformat(),
    )
