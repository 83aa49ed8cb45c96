"""The presenter: a job as the WaveSpeed prediction object its caller (or its webhook) sees."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fluxrelay.domain.jobs import JobItem
from fluxrelay.domain.ports import OutputStore
from fluxrelay.models.predictions import (
    Prediction,
    PredictionMetrics,
    PredictionUrls,
    Timings,
    WithheldOutputs,
)
from fluxrelay.models.workflow import WebhookDelivery
from fluxrelay.settings import Settings

if TYPE_CHECKING:
    # Imported where they are built: the notify task presents predictions on every cold start
    # and never a delivery log, whose models (and the history queries they extend) cost it
    # about a tenth of its import; nor does a submit, which need not load the replays either.
    from fluxrelay.domain.deliveries import Replay
    from fluxrelay.models.deliveries import WebhookDeliveryLog, WebhookRedeliveryReport


@dataclass
class PredictionPresenter:
    outputs: OutputStore
    settings: Settings

    def present(self, job: JobItem, *, allow_base64: bool = True, with_metrics: bool = False) -> Prediction:
        wants_base64 = allow_base64 and bool(job.request.get("enable_base64_output"))
        if wants_base64:
            urls = [base64.b64encode(self.outputs.read(o.key)).decode() for o in job.outputs]
        else:
            urls = [
                self.outputs.presigned_get(o.key, self.settings.output_url_ttl_seconds) for o in job.outputs
            ]
        inference = job.inference_ms or 0
        error = job.error.message if job.error else ""
        return Prediction(
            id=job.job_id,
            outputs=urls,
            urls=PredictionUrls(get=job.result_url),
            has_nsfw_contents=[o.nsfw for o in job.outputs],
            status=job.status.public,
            created_at=job.created_at,
            error=error,
            error_type=job.error.type if job.error else None,
            retryable=job.error.retryable if job.error else None,
            executionTime=inference,
            timings=Timings(inference=inference),
            metrics=self.metrics(job) if with_metrics else None,
            withheld=_withheld(job),
        )

    def metrics(self, job: JobItem) -> PredictionMetrics:
        bytes_stored = sum(o.size for o in job.outputs)
        total = (job.finished_at - job.created_at).total_seconds() if job.finished_at else None
        return PredictionMetrics(
            predict_time=(job.inference_ms or 0) / 1000,
            total_time=total,
            state_transitions=job.usage.state_transitions,
            lambda_invocations=job.usage.lambda_invocations,
            lambda_ms=job.usage.lambda_ms,
            upstream_polls=job.usage.upstream_polls,
            images_stored=len(job.outputs),
            bytes_stored=bytes_stored,
            estimated_cost_usd=self.settings.cost_prices.estimate(
                job.usage, objects_stored=len(job.outputs), bytes_stored=bytes_stored
            ),
        )


def _withheld(job: JobItem) -> WithheldOutputs | None:
    count = job.withheld_outputs
    if not count:
        return None
    total = count + len(job.outputs)
    return WithheldOutputs(
        count=count,
        reason=f"{count} of {total} outputs flagged as NSFW by the model provider; "
        "this service withholds flagged outputs",
    )


def delivery_log(job: JobItem) -> WebhookDeliveryLog:
    """A job's webhook delivery log. Only the URL's host is shown: its path or query may hold a
    token the receiver checks."""
    from fluxrelay.domain.deliveries import message_id
    from fluxrelay.models.deliveries import WebhookAttemptRecord, WebhookDeliveryLog

    hook = job.webhook
    if hook is None:
        return WebhookDeliveryLog(id=job.job_id, state=WebhookDelivery.NONE.value, attempts=0, items=[])
    host = _host(hook.url)
    return WebhookDeliveryLog(
        id=job.job_id,
        webhook_id=message_id(job.job_id),
        url_host=host,
        state=hook.state.value,
        attempts=hook.attempts,
        next_retry_at=hook.next_retry_at,
        delivered_at=hook.delivered_at,
        gave_up_at=hook.gave_up_at,
        gave_up_reason=hook.gave_up_reason,
        items=[
            WebhookAttemptRecord(
                attempt=a.number,
                at=a.at,
                trigger=a.trigger,
                url_host=host,
                status_code=a.status,
                error=a.error,
                latency_ms=a.latency_ms,
                outcome=a.outcome.value,
                next_retry_at=a.next_retry_at,
            )
            for a in reversed(hook.log)
        ],
    )


def redelivery_report(replays: list[Replay], next_cursor: str | None) -> WebhookRedeliveryReport:
    """A bulk replay's answer: each job's outcome and how many came to each."""
    from fluxrelay.models.deliveries import WebhookRedeliveryReport, WebhookReplayRecord

    outcomes = [replay.outcome for replay in replays]
    return WebhookRedeliveryReport(
        matched=len(replays),
        redelivered=outcomes.count("redelivered"),
        failed=outcomes.count("failed"),
        skipped=outcomes.count("skipped"),
        items=[
            WebhookReplayRecord(id=r.job_id, outcome=r.outcome, status_code=r.status, error=r.error)
            for r in replays
        ],
        next_cursor=next_cursor,
    )


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host
