"""Reusable constrained types shared by the wire models, the job item and the adapters.

Apart from `wire.py` so that a task which only reads and writes jobs does not build the
submit body's models at cold start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, PlainSerializer


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    # Fixed width (always 6 fraction digits, "Z"), so the strings also sort chronologically.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]
"""A timezone-aware datetime (naive ones are rejected), kept in UTC, JSON as RFC 3339 "...Z".

Upstream sends nanoseconds; Python keeps microseconds (the last 3 digits are dropped).
"""
