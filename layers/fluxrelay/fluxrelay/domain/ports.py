"""Ports: what the domain needs from the outside world. Adapters implement them, the in-memory
fakes in the tests implement them too, and one contract suite holds both to the same cases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol, Unpack

if TYPE_CHECKING:  # types only: importing the ports builds no model
    from fluxrelay.domain.jobs import JobFields, JobItem, JobStatus, WebhookState
    from fluxrelay.domain.usage import JobUsage
    from fluxrelay.models.notices import JobNotice
    from fluxrelay.models.upstream import UpstreamPrediction
    from fluxrelay.models.wire import Prediction
    from fluxrelay.models.workflow import WakeRoute, WorkflowStart


@dataclass(frozen=True)
class JobFilter:
    """Which of an owner's jobs a history call wants; None means any."""

    statuses: frozenset[JobStatus] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, job: JobItem) -> bool:
        return (
            (self.statuses is None or job.status in self.statuses)
            and (self.created_after is None or job.created_at >= self.created_after)
            and (self.created_before is None or job.created_at <= self.created_before)
        )


@dataclass(frozen=True)
class JobPosition:
    """A place in an owner's index: the index key of the last job read (its stored creation
    time, exactly as stored, and its id)."""

    created_at: str
    job_id: str


@dataclass(frozen=True)
class JobPage:
    """A page of jobs. `next` is where the following page starts, None after the last one; a
    page may hold fewer jobs than asked for and still have a `next` (the store bounds how much
    of the index one call reads, however sparse the filter)."""

    items: list[JobItem]
    next: JobPosition | None


class ExecutionStatus(StrEnum):
    """A workflow execution as Step Functions reports it; MISSING = never started."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"
    MISSING = "MISSING"


class JobStore(Protocol):
    """Jobs in the table; every status change is conditional."""

    def create(self, job: JobItem) -> None:
        """Write a new job; raises ConflictError if the id exists."""

    def get(self, job_id: str) -> JobItem | None: ...

    def transition(self, job_id: str, to: JobStatus, **fields: Unpack[JobFields]) -> JobItem | None:
        """Move to `to` (only from `allowed_sources(to)`) and set `fields` in the same write.
        Returns the new item, or None when the condition refused the change. A job that ends
        here stays among the `active` ones until `mark_notified`."""

    def update(self, job_id: str, **fields: Unpack[JobFields]) -> JobItem:
        """Set fields without changing the status; raises NotFoundError for an unknown job."""

    def claim(self, job_id: str, field: Literal["dispatched_at"], value: datetime) -> bool:
        """Set `field` only if it is not set yet and the job has not ended; False otherwise (a
        one-time marker that no finished job takes)."""

    def add_usage(self, job_id: str, usage: JobUsage) -> JobItem | None:
        """Add `usage` to the job's counters in one atomic write; returns the job as it now is,
        None (and no write) for an unknown job."""

    def update_webhook(self, job_id: str, webhook: WebhookState, *, expected_attempts: int) -> JobItem | None:
        """Set the webhook state only while its attempt count is still `expected_attempts`;
        None when another delivery (the workflow's, or a replay) recorded an attempt first."""

    def owned_page(self, owner: str, wanted: JobFilter, *, limit: int, after: JobPosition | None) -> JobPage:
        """Up to `limit` of `owner`'s jobs matching `wanted`, newest first, starting after
        `after`, from the owner index (never a scan)."""

    def count_owned(self, owner: str, wanted: JobFilter) -> int:
        """How many of `owner`'s jobs match `wanted`."""

    def claim_resume(self, job_id: str, seen: int) -> bool:
        """Count one more resume if the job's counter is still `seen`; False when another
        writer counted first."""

    def active(self, limit: int) -> list[str]:
        """Up to `limit` ids of the jobs not yet notified (unfinished, or finished with their
        Notify still to run or under way), oldest first (an index, never a scan)."""

    def mark_notified(self, job_id: str) -> bool:
        """Take a finished job out of `active`: nothing more is due for it (its last Notify ran,
        or the caller learnt of its end in the answer). False, and no change, for an unknown or
        unfinished job. Until then the sweeper can still find a finished job whose workflow
        died before notifying it."""


class SlotPool(Protocol):
    """The global cap on concurrent upstream tasks. Both calls are idempotent per job."""

    def acquire(self, job_id: str) -> bool: ...

    def release(self, job_id: str) -> None: ...

    def holders(self) -> list[str]:
        """The job ids holding a slot now."""


class Upstream(Protocol):
    """The paid image API (WaveSpeed)."""

    def submit(self, payload: Mapping[str, object], *, webhook: str | None = None) -> UpstreamPrediction: ...

    def get_result(self, task_id: str) -> UpstreamPrediction: ...


class Workflow(Protocol):
    def start(self, start: WorkflowStart, name: str | None = None) -> str:
        """Start an execution named `name` (default: `start.job_id`); returns the execution ARN.
        Starting one name twice is harmless (same name = same execution)."""

    def status(self, execution_arn: str) -> ExecutionStatus: ...

    def stop(self, execution_arn: str) -> None:
        """Stop a running execution (harmless when it has ended)."""

    def wake(self, token: str, route: WakeRoute) -> bool:
        """End the parked wait that holds `token`: its execution goes on to `route` at once.
        False when the token is no longer waiting (already used, timed out, execution gone):
        harmless."""


class OutputStore(Protocol):
    """Our bucket, as the outputs of a job need it."""

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """Stream chunks into `key`; returns the byte count."""

    def presigned_get(self, key: str, expires_in: int) -> str: ...

    def read(self, key: str) -> bytes: ...


class OutputSource(Protocol):
    """Fetches an upstream output URL (through the SSRF guard)."""

    def open(self, url: str) -> AbstractContextManager[Iterator[bytes]]: ...


class ObjectInfo(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def content_type(self) -> str: ...


class UploadStore(Protocol):
    """The media bucket as the upload flows need it."""

    def presigned_put(
        self, key: str, content_type: str, content_length: int | None, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL whose signature enforces the content type (and length, when given), and
        the exact headers the uploader must send."""

    def presigned_get(self, key: str, expires_in: int) -> str: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def read_head(self, key: str, length: int) -> bytes:
        """The first `length` bytes of the object."""

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The whole object (None if missing); raises InvalidRequestError above `max_bytes`."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...


class Notifier(Protocol):
    def publish(self, notice: JobNotice) -> None:
        """Announce a finished job (SNS); the notice's status, owner and source are also sent
        as message attributes, for subscription filter policies."""


class WebhookSender(Protocol):
    def deliver(self, url: str, payload: Prediction, secrets: list[str], message_id: str) -> int:
        """POST the signed payload; returns the HTTP status (raises on network/URL errors)."""


class WebhookSecrets(Protocol):
    def signing_secrets(self, owner: str) -> list[str]:
        """The owner's secrets to sign with: the current one, plus the previous one during rotation."""

    def current(self, owner: str) -> str:
        """The owner's current secret, created on first use."""


class Presenter(Protocol):
    """Turns a job into the WaveSpeed prediction its caller (or its webhook) sees."""

    def present(self, job: JobItem, *, allow_base64: bool = True) -> Prediction: ...


class UrlCheck(Protocol):
    """Raises UnsafeUrlError for a URL we must never post to (the SSRF guard)."""

    def __call__(self, url: str) -> object: ...
