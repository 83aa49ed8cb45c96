"""In-memory fakes of the ports, with the same conditional-status semantics as DynamoDB.

The contract suite (tests/contract) holds each fake and its DynamoDB adapter to the same cases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, Unpack

from fluxrelay.domain.errors import ConflictError, NotFoundError, OutputUnavailableError
from fluxrelay.domain.jobs import JobFields, JobItem, JobStatus, WebhookState, allowed_sources, utcnow
from fluxrelay.domain.ports import ExecutionStatus, JobFilter, JobPage, JobPosition
from fluxrelay.domain.usage import JobUsage
from fluxrelay.models.notices import JobNotice
from fluxrelay.models.wire import Prediction
from fluxrelay.models.workflow import WakeRoute, WorkflowStart


class MemoryJobStore:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        """`clock` stamps `updated_at` on every write, as DynamoDB's adapter does with the time
        of the write; a test whose services run on a test clock gives the store the same one."""
        self.items: dict[str, JobItem] = {}
        self.notified: set[str] = set()  # out of the active index (`mark_notified`)
        self.writes = 0
        self._clock = clock
        self._lock = threading.Lock()

    def create(self, job: JobItem) -> None:
        with self._lock:
            if job.job_id in self.items:
                raise ConflictError("exists")
            self.items[job.job_id] = job.model_copy(deep=True)
            self.writes += 1

    def get(self, job_id: str) -> JobItem | None:
        job = self.items.get(job_id)
        return job.model_copy(deep=True) if job else None

    def transition(self, job_id: str, to: JobStatus, **fields: Unpack[JobFields]) -> JobItem | None:
        with self._lock:
            job = self.items.get(job_id)
            if job is None or job.status not in allowed_sources(to):
                return None
            self.items[job_id] = job.model_copy(update={"status": to, "updated_at": self._clock(), **fields})
            self.writes += 1
            return self.items[job_id].model_copy(deep=True)

    def claim(self, job_id: str, field: Literal["dispatched_at"], value: datetime) -> bool:
        with self._lock:
            job = self.items.get(job_id)
            if job is None or getattr(job, field) is not None or job.status.terminal:
                return False
            self.items[job_id] = job.model_copy(update={field: value})
            return True

    def update_webhook(self, job_id: str, webhook: WebhookState, *, expected_attempts: int) -> JobItem | None:
        with self._lock:
            job = self.items.get(job_id)
            if job is None or job.webhook is None or job.webhook.attempts != expected_attempts:
                return None
            self.items[job_id] = job.model_copy(update={"webhook": webhook, "updated_at": self._clock()})
            self.writes += 1
            return self.items[job_id].model_copy(deep=True)

    def owned_page(self, owner: str, wanted: JobFilter, *, limit: int, after: JobPosition | None) -> JobPage:
        ordered = sorted(
            ((_position(job), job) for job in self.items.values() if job.owner == owner),
            key=lambda pair: (pair[0].created_at, pair[0].job_id),
            reverse=True,
        )
        if after is not None:
            start = (after.created_at, after.job_id)
            ordered = [(p, j) for p, j in ordered if (p.created_at, p.job_id) < start]
        matching = [(p, j) for p, j in ordered if wanted.matches(j)]
        page = matching[:limit]
        more = len(matching) > limit
        return JobPage([j.model_copy(deep=True) for _, j in page], page[-1][0] if more else None)

    def count_owned(self, owner: str, wanted: JobFilter) -> int:
        return sum(1 for job in self.items.values() if job.owner == owner and wanted.matches(job))

    def claim_resume(self, job_id: str, seen: int) -> bool:
        with self._lock:
            job = self.items.get(job_id)
            if job is None or job.resumes != seen:
                return False
            self.items[job_id] = job.model_copy(update={"resumes": seen + 1})
            return True

    def active(self, limit: int) -> list[str]:
        live = [j for j in self.items.values() if j.job_id not in self.notified]
        return [j.job_id for j in sorted(live, key=lambda j: j.created_at)[:limit]]

    def mark_notified(self, job_id: str) -> bool:
        with self._lock:
            job = self.items.get(job_id)
            if job is None or not job.status.terminal:
                return False
            self.notified.add(job_id)
            self.writes += 1
            return True

    def update(self, job_id: str, **fields: Unpack[JobFields]) -> JobItem:
        with self._lock:
            if job_id not in self.items:
                raise NotFoundError(job_id)
            self.items[job_id] = self.items[job_id].model_copy(update={"updated_at": self._clock(), **fields})
            self.writes += 1
            return self.items[job_id].model_copy(deep=True)

    def add_usage(self, job_id: str, usage: JobUsage) -> JobItem | None:
        with self._lock:
            job = self.items.get(job_id)
            if job is None:
                return None
            if usage.nonzero():
                total = {name: value + getattr(usage, name) for name, value in job.usage.model_dump().items()}
                self.items[job_id] = job.model_copy(update={"usage": JobUsage(**total)})
                self.writes += 1
            return self.items[job_id].model_copy(deep=True)


def _position(job: JobItem) -> JobPosition:
    return JobPosition(created_at=job.model_dump(mode="json")["created_at"], job_id=job.job_id)


class MemoryOutputStore:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        data = b"".join(chunks)
        self.objects[key] = (data, content_type)
        return len(data)

    def presigned_get(self, key: str, expires_in: int) -> str:
        return f"https://bucket.example/{key}?expires={expires_in}"

    def read(self, key: str) -> bytes:
        return self.objects[key][0]


class MemoryOutputSource:
    """Serves bytes by URL; a URL mapped to an int answers that HTTP status."""

    def __init__(self, files: dict[str, bytes | int]) -> None:
        self.files = files
        self.opened: list[str] = []

    @contextmanager
    def open(self, url: str) -> Iterator[Iterator[bytes]]:
        self.opened.append(url)
        found = self.files[url]
        if isinstance(found, int):
            raise OutputUnavailableError(f"the upstream output is gone (HTTP {found})")
        yield iter([found[i : i + 1000] for i in range(0, len(found), 1000)])


class RecordingNotifier:
    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], dict[str, str]]] = []

    def publish(self, notice: JobNotice) -> None:
        self.messages.append((notice.model_dump(mode="json"), notice.attributes()))


class ScriptedSender:
    """Answers webhook deliveries with the given statuses in order."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.calls: list[tuple[str, dict[str, Any], list[str]]] = []
        self.message_ids: list[str] = []

    def deliver(self, url: str, payload: Prediction, secrets: list[str], message_id: str) -> int:
        self.calls.append((url, payload.model_dump(mode="json", by_alias=True, exclude_none=True), secrets))
        self.message_ids.append(message_id)
        return self.statuses.pop(0)


class FixedSecrets:
    def __init__(self) -> None:
        self.created: list[str] = []

    def current(self, owner: str) -> str:
        self.created.append(owner)
        return "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0"

    def signing_secrets(self, owner: str) -> list[str]:
        return [self.current(owner)]


class RecordingWorkflow:
    """Records starts; `wake` spends a token once, as Step Functions does (a second send fails),
    and records where each woken wait was sent."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.woken: list[str] = []
        self.routes: list[WakeRoute] = []
        self.executions: dict[str, ExecutionStatus] = {}

    def wake(self, token: str, route: WakeRoute = WakeRoute.CHECK) -> bool:
        if token in self.woken:
            return False
        self.woken.append(token)
        self.routes.append(route)
        return True

    def start(self, start: WorkflowStart, name: str | None = None) -> str:
        name = name or start.job_id
        arn = f"arn:aws:states:us-east-1:123456789012:execution:gen:{name}"
        if arn not in self.executions:  # one execution per name, as Step Functions
            self.started.append((start.job_id, start.model_dump(mode="json")))
            self.executions[arn] = ExecutionStatus.RUNNING
        return arn

    def status(self, execution_arn: str) -> ExecutionStatus:
        return self.executions.get(execution_arn, ExecutionStatus.MISSING)

    def stop(self, execution_arn: str) -> None:
        if self.executions.get(execution_arn) is ExecutionStatus.RUNNING:
            self.executions[execution_arn] = ExecutionStatus.ABORTED


class MemorySlots:
    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.held: set[str] = set()

    def acquire(self, job_id: str) -> bool:
        if not self.capacity:  # no cap: nothing to keep track of, as in DynamoDB
            return True
        if job_id not in self.held and len(self.held) >= self.capacity:
            return False
        self.held.add(job_id)
        return True

    def release(self, job_id: str) -> None:
        self.held.discard(job_id)

    def holders(self) -> list[str]:
        return sorted(self.held)
