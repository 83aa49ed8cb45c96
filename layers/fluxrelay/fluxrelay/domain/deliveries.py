"""Webhook deliveries: one signed attempt at a time, each recorded in the job's delivery log.

The workflow's Notify task and a caller's replay (of one job, or of each job of a page of their
history) deliver through `WebhookDeliverer`. Every attempt keeps the job's one `webhook-id`
(`msg_<job id>`), so a receiver that got a delivery twice can tell; the timestamp and the
signature are fresh each time. Two deliveries at once (the workflow's retry and a replay) record
their attempts one after the other: each write is conditional on the attempt count it read, and
is recomputed from the newer state if it lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fluxrelay.domain.errors import ConflictError, FluxRelayError, JobStateError
from fluxrelay.domain.jobs import AttemptOutcome, JobItem, WebhookAttempt, WebhookState, utcnow
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import JobStore, Presenter, UrlCheck, WebhookSecrets, WebhookSender
from fluxrelay.models.workflow import WebhookDelivery
from fluxrelay.observability import MetricName, count, logger

Clock = Callable[[], datetime]
Change = Callable[[WebhookState], WebhookState]
# A write loses only to another attempt recorded in the same instant; a few tries always do.
_RECORD_TRIES = 5


def message_id(job_id: str) -> str:
    """The `webhook-id` of every delivery of a job's webhook (receivers deduplicate on it)."""
    return f"msg_{job_id}"


@dataclass(frozen=True)
class Sent:
    """What one POST to the receiver gave."""

    status: int | None  # None when no answer came (network error, refused URL)
    error: str | None  # None when the receiver accepted it (2xx)
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def gone(self) -> bool:
        # 410 Gone: the receiver says this endpoint will never take it; retrying is pointless.
        return self.status == 410


@dataclass
class WebhookDeliverer:
    lifecycle: JobLifecycle
    store: JobStore
    sender: WebhookSender
    secrets: WebhookSecrets
    presenter: Presenter
    check_url: UrlCheck
    clock: Clock = utcnow
    timer: Callable[[], float] = time.monotonic

    def send(self, job: JobItem, url: str) -> Sent:
        """POST the job's prediction, signed with the owner's secrets, through the SSRF guard."""
        payload = self.presenter.present(job, allow_base64=False)
        started = self.timer()
        status: int | None = None
        try:
            self.check_url(url)  # again at each delivery: DNS may have changed since submit
            status = self.sender.deliver(
                url, payload, self.secrets.signing_secrets(job.owner), message_id(job.job_id)
            )
            error = None if 200 <= status < 300 else f"receiver answered HTTP {status}"
        except FluxRelayError as exc:
            error = exc.message
        return Sent(status, error, max(0, round((self.timer() - started) * 1000)))

    def record(self, job_id: str, change: Change, known: WebhookState | None = None) -> WebhookState:
        """Apply `change` to the stored webhook state (conditionally, see the module doc) and
        count a delivery that this change gave up. `known`: the state the caller has just read,
        tried first (the conditional write still refuses it if it has changed)."""
        for _ in range(_RECORD_TRIES):
            before = known if known is not None else self.lifecycle.load(job_id).webhook
            known = None  # a retry reads the newer state
            if before is None:
                raise JobStateError(f"job {job_id} has no webhook")
            after = change(before)
            if self.store.update_webhook(job_id, after, expected_attempts=before.attempts) is not None:
                if after.state is WebhookDelivery.GAVE_UP and before.state is not WebhookDelivery.GAVE_UP:
                    count(MetricName.WEBHOOK_GAVE_UP)
                    logger.warning("webhook delivery given up", extra={"reason": after.gave_up_reason})
                return after
        raise ConflictError("the delivery log changed while this attempt was recorded; try again")

    def replay(self, owner: str, job_id: str) -> WebhookState:
        """Deliver a finished job's webhook once more, now, and record it as a replay. It does
        not schedule retries; a replay that gets 410 Gone stops the workflow's retries."""
        job = self.lifecycle.owned(owner, job_id)
        refusal = replay_refusal(job)
        if refusal is not None:
            raise JobStateError(refusal)
        return self._replay(job)[1]

    def replay_each(self, jobs: list[JobItem]) -> list[Replay]:
        """Replay the webhook of each of `jobs` (a page of the caller's history) that can be
        replayed, and say for each what came of it, in the order given."""
        refusals = {job.job_id: replay_refusal(job) for job in jobs}
        to_send = [job for job in jobs if refusals[job.job_id] is None]
        # Each delivery may take up to the sender's timeout: one after the other, a page of
        # them could outlast the API's own time limit; side by side they take as long as one.
        with ThreadPoolExecutor(max_workers=max(1, len(to_send))) as pool:
            sent = {replay.job_id: replay for replay in pool.map(self._replay_one, to_send)}
        return [sent.get(job.job_id) or Replay(job.job_id, "skipped", refusals[job.job_id]) for job in jobs]

    def _replay_one(self, job: JobItem) -> Replay:
        try:
            sent, _ = self._replay(job)
        except FluxRelayError as exc:
            # Its attempt could not be recorded (the log kept changing): this job's replay is
            # reported as failed; the others of the page are not lost with it.
            return Replay(job.job_id, "failed", exc.message)
        return Replay(job.job_id, "redelivered" if sent.ok else "failed", sent.error, sent.status)

    def _replay(self, job: JobItem) -> tuple[Sent, WebhookState]:
        assert job.webhook is not None
        now = self.clock()
        sent = self.send(job, job.webhook.url)

        def change(hook: WebhookState) -> WebhookState:
            if sent.ok:
                outcome = AttemptOutcome.DELIVERED
                fields: dict[str, object] = {"state": WebhookDelivery.DELIVERED, "delivered_at": now}
            elif sent.gone and hook.state is WebhookDelivery.RETRYING:
                outcome = AttemptOutcome.GAVE_UP
                fields = give_up(now, "the receiver answered 410 Gone")
            else:
                outcome, fields = AttemptOutcome.FAILED, {}
            return hook.with_attempt(attempt(hook, now, sent, "replay", outcome), **fields)

        return sent, self.record(job.job_id, change)


@dataclass(frozen=True)
class Replay:
    """What one job's replay in a bulk replay came to: `redelivered`, `failed` (the receiver did
    not take it; `error` says why) or `skipped` (`error` says why it was not sent)."""

    job_id: str
    outcome: Literal["redelivered", "failed", "skipped"]
    error: str | None = None
    status: int | None = None


def replay_refusal(job: JobItem) -> str | None:
    """Why `job`'s webhook cannot be replayed, or None when it can."""
    if job.webhook is None:
        return "this prediction has no webhook (submit with ?webhook=https://...)"
    if not job.status.terminal:
        return f"this prediction is {job.status.public}: its webhook is sent when it finishes"
    return None


def attempt(
    hook: WebhookState,
    now: datetime,
    sent: Sent,
    trigger: Literal["workflow", "replay"],
    outcome: AttemptOutcome,
    next_retry_at: datetime | None = None,
) -> WebhookAttempt:
    """The log entry of `sent`, numbered after the attempts `hook` has recorded."""
    return WebhookAttempt(
        number=hook.attempts + 1,
        at=now,
        trigger=trigger,
        status=sent.status,
        error=sent.error,
        latency_ms=sent.latency_ms,
        outcome=outcome,
        next_retry_at=next_retry_at,
    )


def give_up(now: datetime, reason: str) -> dict[str, object]:
    """The state fields of a delivery that ends here, undelivered."""
    return {"state": WebhookDelivery.GAVE_UP, "gave_up_at": now, "gave_up_reason": reason}
