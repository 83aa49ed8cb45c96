"""Webhook delivery wire models: a job's delivery log and the answers of the redeliver calls."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from fluxrelay.models.history import PredictionListQuery
from fluxrelay.models.types import UtcDatetime
from fluxrelay.models.wire import Envelope, _whole_number


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


# One call replays at most this many jobs (side by side, see WebhookDeliverer.replay_each); a
# longer range is continued with the answer's cursor.
MAX_REDELIVER_BATCH = 20


class WebhookRedeliverRequest(PredictionListQuery):
    """Body of `POST /api/v3/webhooks/redeliver`: which of your predictions to replay, newest
    first, at most `limit` per call; every filter is optional."""

    limit: Annotated[
        int,
        Field(ge=1, le=MAX_REDELIVER_BATCH),
        _whole_number(f"must be a whole number from 1 to {MAX_REDELIVER_BATCH}"),
    ] = Field(MAX_REDELIVER_BATCH, description="At most this many predictions in this call.")


class WebhookReplayRecord(BaseModel):
    """What came of one prediction's replay."""

    id: str = Field(description="The prediction id.")
    outcome: Literal["redelivered", "failed", "skipped"] = Field(
        description="`redelivered`: your receiver took it; `failed`: it was sent, not taken; "
        "`skipped`: not sent (no webhook, or not finished yet)."
    )
    status_code: int | None = Field(None, description="Your receiver's HTTP status; null when none came.")
    error: str | None = Field(None, description="Why it failed or was skipped.")


class WebhookRedeliveryReport(BaseModel):
    """Answer of `POST /api/v3/webhooks/redeliver`: `matched` = `redelivered` + `failed` + `skipped`."""

    matched: int = Field(description="Predictions of this call that match the filters.")
    redelivered: int = Field(description="Sent again and taken by your receiver (2xx).")
    failed: int = Field(description="Sent again, but your receiver did not take it.")
    skipped: int = Field(description="Not sent: no webhook, or not finished yet.")
    items: list[WebhookReplayRecord] = Field(description="One per matched prediction, newest first.")
    next_cursor: str | None = Field(
        None, description="Pass it back as `cursor` (same filters) to go on; null after the last."
    )


class WebhookRedeliveryReportEnvelope(Envelope[WebhookRedeliveryReport]):
    pass
