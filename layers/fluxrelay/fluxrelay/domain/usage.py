"""What a job costs us: the resources each invocation spends on it, and their price.

Pure domain code. An invocation that works on a job meters what it uses (`metering()`), the use
cases add to the open meter (`count(...)`, e.g. each upstream result poll), and the handler adds
the invocation's usage to the job in one atomic write at its end (`fluxrelay.metering`). The
estimate multiplies the totals by the price table (`fluxrelay.domain.pricing`) when the job is
read, so a new price table applies to old jobs too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

UsageCounter = Literal[
    "state_transitions", "lambda_invocations", "lambda_ms", "lambda_mb_ms", "upstream_polls"
]


class JobUsage(BaseModel):
    """Counters of what was spent on one job (also the job item's `usage_*` attributes)."""

    state_transitions: int = 0
    lambda_invocations: int = 0
    lambda_ms: int = 0
    # Duration times memory (ms x MB): what Lambda bills, whatever each function's memory size.
    lambda_mb_ms: int = 0
    upstream_polls: int = 0

    def nonzero(self) -> dict[str, int]:
        return {name: value for name, value in self.model_dump().items() if value}


@dataclass
class Meter:
    """What one invocation spent, and on which job (known from the event, or once created)."""

    job_id: str | None = None
    usage: JobUsage = field(default_factory=JobUsage)


_meter: ContextVar[Meter | None] = ContextVar("fluxrelay_usage_meter", default=None)


@contextmanager
def metering(job_id: str | None = None) -> Iterator[Meter]:
    """Open a meter for this invocation; `count` and `bind` act on it until the block ends."""
    meter = Meter(job_id=job_id)
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def count(counter: UsageCounter, amount: int = 1) -> None:
    """Add to the open meter; nothing when no invocation is metering (e.g. in a unit test)."""
    meter = _meter.get()
    if meter is not None:
        setattr(meter.usage, counter, getattr(meter.usage, counter) + amount)


def bind(job_id: str) -> None:
    """Charge the open meter to `job_id` (an invocation that created or found its job)."""
    meter = _meter.get()
    if meter is not None:
        meter.job_id = job_id
