"""Webhook delivery wire models: a job's delivery log and the answers of the redeliver calls."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fluxrelay.models.wire import Envelope, UtcDatetime


class WebhookAttemptRecord(BaseModel):
    """One delivery attempt."""

    attempt: int = Field(description="1 for the first attempt, counting replays.")
    at: UtcDatetime
    trigger: Literal["workflow", "replay"] = Field(
        description="`workflow`: the delivery when the job finished, and its retries; `replay`: a redeliver."
    )
    url_host: str
    status_code: int | None = Field(None, description="The receiver's HTTP status; null when no answer came.")
    error: str | None = Field(
        None, description="Why the attempt failed (network error, refused URL, non-2xx)."
    )
    latency_ms: int
    outcome: Literal["delivered", "will_retry", "gave_up", "failed"]
    next_retry_at: UtcDatetime | None = Field(
        None, description="When the workflow tries again (`will_retry`)."
    )


class WebhookDeliveryLog(BaseModel):
    """A job's webhook delivery: its state and its attempts, newest first."""

    id: str = Field(description="The prediction id.")
    webhook_id: str | None = Field(None, description="The `webhook-id` header of every delivery of this job.")
    url_host: str | None = None
    state: Literal["none", "pending", "delivered", "retrying", "gave_up"]
    attempts: int = Field(description="All attempts so far; `items` keeps the newest ones.")
    next_retry_at: UtcDatetime | None = Field(None, description="When the workflow tries again.")
    delivered_at: UtcDatetime | None = None
    gave_up_at: UtcDatetime | None = None
    gave_up_reason: str | None = None
    items: list[WebhookAttemptRecord]


class WebhookDeliveryLogEnvelope(Envelope[WebhookDeliveryLog]):
    pass
