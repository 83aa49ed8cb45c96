"""Ports: what the domain needs from the outside world. Adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from fluxrelay.jobs import JobItem, JobStatus


class JobStore(Protocol):
    """Jobs in the table; every status change is conditional."""

    def create(self, job: JobItem) -> None:
        """Write a new job; fails if the id exists."""

    def get(self, job_id: str) -> JobItem | None: ...

    def transition(self, job_id: str, to: JobStatus, **fields: Any) -> JobItem | None:
        """Move to `to` (only from `allowed_sources(to)`) and set `fields` in the same write.
        Returns the new item, or None when the condition refused the change."""

    def update(self, job_id: str, **fields: Any) -> JobItem:
        """Set fields without changing the status."""

    def claim(self, job_id: str, field: str, value: Any) -> bool:
        """Set `field` only if it is not set yet; False when it was (a one-time marker)."""


class SlotPool(Protocol):
    """The global cap on concurrent upstream tasks. Both calls are idempotent per job."""

    def acquire(self, job_id: str) -> bool: ...

    def release(self, job_id: str) -> None: ...

    def holders(self) -> list[str]:
        """The job ids holding a slot now."""


class Upstream(Protocol):
    """The paid image API (WaveSpeed)."""

    def submit(self, payload: dict[str, Any], *, webhook: str | None = None) -> Any: ...

    def get_result(self, task_id: str) -> Any: ...


class Workflow(Protocol):
    def start(self, job_id: str, payload: dict[str, Any]) -> str:
        """Start the generation workflow named by the job id; returns the execution ARN.
        Starting it twice for one job is harmless (same name = same execution)."""


class OutputStore(Protocol):
    """Our bucket."""

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """Stream chunks into `key`; returns the byte count."""

    def presigned_get(self, key: str, expires_in: int) -> str: ...

    def read(self, key: str) -> bytes: ...


class OutputSource(Protocol):
    """Fetches an upstream output URL (through the SSRF guard)."""

    def open(self, url: str) -> AbstractContextManager[Iterator[bytes]]: ...


class Notifier(Protocol):
    def publish(self, message: dict[str, Any], attributes: dict[str, str]) -> None: ...


class WebhookSender(Protocol):
    def deliver(self, url: str, payload: dict[str, Any], secrets: list[str], message_id: str) -> int:
        """POST the signed payload; returns the HTTP status (raises on network/URL errors)."""


class WebhookSecrets(Protocol):
    def signing_secrets(self, owner: str) -> list[str]:
        """The owner's secrets to sign with: the current one, plus the previous one during rotation."""

    def current(self, owner: str) -> str:
        """The owner's current secret, created on first use."""
