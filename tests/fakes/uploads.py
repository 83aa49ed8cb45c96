"""In-memory fakes for the upload flows: the bucket as `UploadStore`, a counting upstream."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fluxrelay.domain.errors import InvalidRequestError, UpstreamError
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.models.workflow import WorkflowStart


@dataclass(frozen=True)
class MemoryObjectInfo:
    size: int
    content_type: str
    etag: str
    version_id: str | None = None


class MemoryUploadStore:
    """A bucket in a dict. Presigned URLs are fake but carry what a real signature would cover."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.puts: list[dict[str, Any]] = []  # presigned PUTs handed out
        self.reads = 0

    def add(self, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
        self.objects[key] = (data, content_type)

    def presigned_put(
        self, key: str, content_type: str, content_length: int | None, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        headers = {"Content-Type": content_type}
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        self.puts.append({"key": key, "headers": headers, "expires_in": expires_in})
        return f"https://bucket.example/{quote(key)}?X-Amz-Expires={expires_in}&X-Amz-Signature=put", headers

    def presigned_get(self, key: str, expires_in: int) -> str:
        return f"https://bucket.example/{quote(key)}?X-Amz-Expires={expires_in}&X-Amz-Signature=get"

    def head(self, key: str) -> MemoryObjectInfo | None:
        if key not in self.objects:
            return None
        data, ctype = self.objects[key]
        return MemoryObjectInfo(size=len(data), content_type=ctype, etag=hashlib.md5(data).hexdigest())  # noqa: S324

    def read_head(self, key: str, length: int) -> bytes:
        self.reads += 1
        return self.objects[key][0][:length]

    def read(self, key: str, max_bytes: int) -> bytes | None:
        self.reads += 1
        if key not in self.objects:
            return None
        data = self.objects[key][0]
        if len(data) > max_bytes:
            raise InvalidRequestError(f"{key} is larger than {max_bytes} bytes")
        return data

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type)


class CountingUpstream:
    """Records every submission: the tests' proof that a bad input was never paid for."""

    def __init__(self, error: UpstreamError | None = None) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.error = error

    def submit(self, payload: dict[str, Any], *, webhook: str | None = None) -> UpstreamPrediction:
        self.submitted.append(payload)
        if self.error is not None:
            raise self.error
        return UpstreamPrediction(id=f"{len(self.submitted):032x}", status="created")

    def get_result(self, task_id: str) -> Any:
        raise AssertionError("the upload flows never poll")


class FailingWorkflow:
    """A workflow that cannot be started (e.g. a missing IAM permission)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []

    def start(self, start: WorkflowStart) -> str:
        self.started.append((start.job_id, start.model_dump(mode="json")))
        raise RuntimeError("AccessDenied")
