"""Notify: SNS for every finished job, and a signed webhook (retried by the workflow) when asked."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from fluxrelay.domain.errors import FluxRelayError, JobStateError
from fluxrelay.domain.jobs import JobItem, WebhookState, utcnow
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import (
    JobStore,
    Notifier,
    Presenter,
    SlotPool,
    UrlCheck,
    WebhookSecrets,
    WebhookSender,
)
from fluxrelay.models.notices import JobNotice
from fluxrelay.models.workflow import NotifyOutput, WebhookDelivery
from fluxrelay.observability import logger
from fluxrelay.settings import Settings

Clock = Callable[[], datetime]
# The longest wait between two webhook attempts, whatever the backoff says.
_MAX_REDELIVERY_WAIT_SECONDS = 3600


@dataclass
class NotifyService:
    lifecycle: JobLifecycle
    store: JobStore
    slots: SlotPool
    notifier: Notifier
    sender: WebhookSender
    secrets: WebhookSecrets
    presenter: Presenter
    settings: Settings
    check_url: UrlCheck
    clock: Clock = utcnow

    def notify(self, job_id: str) -> NotifyOutput:
        job = self.lifecycle.load(job_id)
        if not job.status.terminal:
            raise JobStateError(f"job {job_id} is {job.status.value}, not finished")
        self.slots.release(job_id)  # idempotent; frees the upstream slot for queued jobs
        if not job.sns_published:
            self.notifier.publish(_notice(job))
            job = self.store.update(job_id, sns_published=True)
        hook = job.webhook
        if hook is None:
            return NotifyOutput(job_id=job_id, attempt=0, webhook=WebhookDelivery.NONE, wait_seconds=0)
        if hook.state in (WebhookDelivery.DELIVERED, WebhookDelivery.GAVE_UP):
            return NotifyOutput(job_id=job_id, attempt=hook.attempts, webhook=hook.state, wait_seconds=0)
        return self._deliver(job, hook)

    def _deliver(self, job: JobItem, hook: WebhookState) -> NotifyOutput:
        now = self.clock()
        first = hook.first_attempt_at or now
        payload = self.presenter.present(job, allow_base64=False)
        status: int | None = None
        try:
            self.check_url(hook.url)  # again at delivery: DNS may have changed since submit
            status = self.sender.deliver(
                hook.url, payload, self.secrets.signing_secrets(job.owner), f"msg_{job.job_id}"
            )
            problem = None if 200 <= status < 300 else f"receiver answered HTTP {status}"
        except FluxRelayError as exc:
            problem = exc.message
        attempts = hook.attempts + 1
        if problem is None:
            delivered = {"state": WebhookDelivery.DELIVERED, "last_error": None, "delivered_at": now}
            self._record(job, hook, attempts, first, status, delivered)
            return NotifyOutput(
                job_id=job.job_id, attempt=attempts, webhook=WebhookDelivery.DELIVERED, wait_seconds=0
            )
        remaining = self.settings.webhook_retry_span_seconds - (now - first).total_seconds()
        state = WebhookDelivery.RETRYING if remaining > 0 else WebhookDelivery.GAVE_UP
        self._record(job, hook, attempts, first, status, {"state": state, "last_error": problem})
        logger.info("webhook delivery failed", extra={"attempt": attempts, "reason": problem, "state": state})
        if state is WebhookDelivery.GAVE_UP:
            return NotifyOutput(job_id=job.job_id, attempt=attempts, webhook=state, wait_seconds=0)
        wait = min(
            self.settings.webhook_retry_base_seconds * 2 ** (attempts - 1),
            _MAX_REDELIVERY_WAIT_SECONDS,
            math.ceil(remaining),
        )
        return NotifyOutput(job_id=job.job_id, attempt=attempts, webhook=state, wait_seconds=int(wait))

    def _record(
        self,
        job: JobItem,
        hook: WebhookState,
        attempts: int,
        first: datetime,
        status: int | None,
        outcome: Mapping[str, object],
    ) -> None:
        update = {"attempts": attempts, "first_attempt_at": first, "last_status": status, **outcome}
        self.store.update(job.job_id, webhook=hook.model_copy(update=update))


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
