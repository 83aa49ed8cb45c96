"""WaveSpeed's wire shapes as the stand-in answers them: the envelope, errors and timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Response


class ApiError(Exception):
    """An error answer in WaveSpeed's envelope (`code` is also the HTTP status)."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def envelope(
    data: Any, code: int = 200, message: str = "success", headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"code": code, "message": message, "data": data})
    return Response(body, status=code, mimetype="application/json", headers=headers)


def rfc3339(wall: float) -> str:
    """A wall-clock time as upstream writes it: UTC with nanoseconds."""
    nanos = int(wall * 1_000_000_000)
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos % 1_000_000_000:09d}Z"
