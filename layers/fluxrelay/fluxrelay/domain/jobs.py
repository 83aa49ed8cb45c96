"""The job: its item model and the rules for moving it between statuses.

Pure domain code (no boto3, no httpx). Every status change goes through `allowed_sources`,
which the job store turns into a DynamoDB condition, so a late or duplicated event can never
move a job backwards or complete it twice.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, Field

from fluxrelay.domain.usage import JobUsage
from fluxrelay.models.types import UtcDatetime
from fluxrelay.models.workflow import WebhookDelivery


class JobStatus(StrEnum):
    WAITING_UPLOAD = "waiting_upload"  # img2img by upload: parameters known, input not yet uploaded
    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def public(self) -> str:
        """The status a WaveSpeed client sees (its enum has no `waiting_upload`)."""
        return JobStatus.CREATED.value if self is JobStatus.WAITING_UPLOAD else self.value


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED})

# status -> the statuses it may be reached from. Nothing leaves a terminal status.
_SOURCES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.WAITING_UPLOAD: frozenset(),
    JobStatus.CREATED: frozenset({JobStatus.WAITING_UPLOAD}),
    JobStatus.PROCESSING: frozenset({JobStatus.CREATED}),
    JobStatus.COMPLETED: frozenset({JobStatus.CREATED, JobStatus.PROCESSING}),
    JobStatus.FAILED: frozenset({JobStatus.WAITING_UPLOAD, JobStatus.CREATED, JobStatus.PROCESSING}),
    JobStatus.TIMEOUT: frozenset({JobStatus.WAITING_UPLOAD, JobStatus.CREATED, JobStatus.PROCESSING}),
    JobStatus.CANCELLED: frozenset({JobStatus.WAITING_UPLOAD, JobStatus.CREATED, JobStatus.PROCESSING}),
}


def allowed_sources(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which `target` may be entered."""
    return _SOURCES[target]


def new_job_id() -> str:
    """32 lowercase hex characters, the WaveSpeed id format."""
    return secrets.token_hex(16)


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    type: str
    message: str
    retryable: bool = False


class OutputItem(BaseModel):
    key: str
    content_type: str
    size: int
    width: int
    height: int
    nsfw: bool = False


# Attempts kept in a job's delivery log: the newest ones (with retries over up to 72 h at most an
# hour apart, a log could reach ~80 entries); the item stays far below DynamoDB's 400 KB.
WEBHOOK_LOG_LIMIT = 40


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    WILL_RETRY = "will_retry"  # the workflow tries again at `next_retry_at`
    GAVE_UP = "gave_up"  # this attempt ended the delivery (410 Gone, or the retry span is over)
    FAILED = "failed"  # a replay that failed; it schedules nothing


class WebhookAttempt(BaseModel):
    """One delivery attempt, as the delivery log shows it."""

    number: int
    at: datetime
    trigger: Literal["workflow", "replay"]
    status: int | None = None  # the receiver's HTTP status; None when no answer came
    error: str | None = None  # why it failed (network error, refused URL, non-2xx answer)
    latency_ms: int = 0
    outcome: AttemptOutcome
    next_retry_at: datetime | None = None


class WebhookState(BaseModel):
    url: str
    state: WebhookDelivery = WebhookDelivery.PENDING
    attempts: int = 0
    first_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    gave_up_at: datetime | None = None
    gave_up_reason: str | None = None
    log: list[WebhookAttempt] = []  # the newest WEBHOOK_LOG_LIMIT attempts

    @property
    def next_retry_at(self) -> datetime | None:
        """When the workflow's next attempt is due, while the delivery is `retrying`."""
        if self.state is not WebhookDelivery.RETRYING:
            return None
        return next((a.next_retry_at for a in reversed(self.log) if a.next_retry_at), None)

    def with_attempt(self, attempt: WebhookAttempt, **fields: object) -> WebhookState:
        """This state after `attempt`, with the log capped at its newest entries."""
        log = [*self.log, attempt][-WEBHOOK_LOG_LIMIT:]
        first = self.first_attempt_at or attempt.at
        update = {
            "attempts": attempt.number,
            "first_attempt_at": first,
            "last_status": attempt.status,
            "last_error": attempt.error,
            "log": log,
            **fields,
        }
        return self.model_copy(update=update)


class JobItem(BaseModel):
    """A job as stored in DynamoDB (pk = JOB#<job_id>). Never returned to callers as is.

    Empty lists default to a plain `[]` (pydantic copies it for each instance): with
    `default_factory=list`, building the model read the builtin's signature, which Python
    parses from text, a cost every function paid at its cold start."""

    job_id: str
    owner: str
    source: Literal["api", "s3"] = "api"
    # The validated submit body (GenerationRequest as JSON); the upstream payload is derived from it.
    request: dict[str, Any]
    status: JobStatus = JobStatus.CREATED
    upstream_id: str | None = None
    upstream_status: str | None = None
    upstream_outputs: list[str] = []
    nsfw: list[bool] = []
    inference_ms: int | None = None
    # Fixed-width RFC 3339 text in the table, so the owner index sorts and filters by it exactly.
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    dispatched_at: datetime | None = None  # set once, right before the one upstream submit
    submitted_at: datetime | None = None
    processing_at: datetime | None = None
    finished_at: datetime | None = None
    deadline_at: datetime | None = None
    # The caller's own deadline (header Cancel-After), never later than the operator's; the
    # deadline of every phase is capped by it.
    cancel_after_at: datetime | None = None
    polls: int = 0
    outputs: list[OutputItem] = []
    withheld_outputs: int = 0  # flagged outputs left out under the `withhold` NSFW policy
    error: JobError | None = None
    webhook: WebhookState | None = None
    sns_published: bool = False
    execution_arn: str | None = None
    # The wakeable wait: the task token of the workflow's parked wait (None while it runs a
    # check), and when someone (an upstream push, a cancel) asked for a check since the last one.
    wake_token: str | None = None
    wake_requested_at: datetime | None = None
    resumes: int = 0  # executions the sweeper started after the first one died
    result_url: str = ""  # our `urls.get` for this job, fixed at submit time
    input_key: str | None = None  # img2img: the uploaded source object
    expires_at: int | None = None  # DynamoDB TTL (epoch seconds)
    # What the job cost us so far; only ever added to (JobStore.add_usage), never set.
    usage: JobUsage = Field(default_factory=JobUsage)

    @property
    def num_images(self) -> int:
        return int(self.request.get("num_images", 1))


class JobFields(TypedDict, total=False):
    """The fields of a `JobItem` a store write may set (everything but its id and owner)."""

    source: Literal["api", "s3"]
    request: dict[str, Any]
    upstream_id: str | None
    upstream_status: str | None
    upstream_outputs: list[str]
    nsfw: list[bool]
    inference_ms: int | None
    dispatched_at: datetime | None
    submitted_at: datetime | None
    processing_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    cancel_after_at: datetime | None
    polls: int
    outputs: list[OutputItem]
    withheld_outputs: int
    error: JobError | None
    webhook: WebhookState | None
    sns_published: bool
    execution_arn: str | None
    wake_token: str | None
    wake_requested_at: datetime | None
    resumes: int
    result_url: str
    input_key: str | None
    expires_at: int | None
