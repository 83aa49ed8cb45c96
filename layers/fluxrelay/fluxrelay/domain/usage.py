"""What a job costs us: the resources each invocation spends on it, and their price.

Pure domain code. An invocation that works on a job meters what it uses (`metering()`), the use
cases add to the open meter (`count(...)`, e.g. each upstream result poll), and the handler adds
the invocation's usage to the job in one atomic write at its end (`fluxrelay.metering`). The
estimate multiplies the totals by a `PriceTable` when the job is read, so a new price table
applies to old jobs too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PriceTable(BaseModel):
    """List prices in USD (us-east-1, Standard workflows, Lambda on arm64, S3 Standard).

    Override any of them with the `COST_PRICES` setting, a JSON object such as
    `{"step_functions_transition": 0.0000279}` for another region.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_functions_transition: float = Field(0.000025, ge=0)
    lambda_request: float = Field(0.0000002, ge=0)
    lambda_gb_second: float = Field(0.0000133334, ge=0)
    s3_put: float = Field(0.000005, ge=0)
    # One month of storage is counted per stored byte.
    s3_gb_month: float = Field(0.023, ge=0)

    def estimate(self, usage: JobUsage, *, objects_stored: int, bytes_stored: int) -> float:
        """The orchestration cost of a job in USD (WaveSpeed's own price is not included)."""
        gb_seconds = usage.lambda_mb_ms / 1024 / 1000
        return (
            usage.state_transitions * self.step_functions_transition
            + usage.lambda_invocations * self.lambda_request
            + gb_seconds * self.lambda_gb_second
            + objects_stored * self.s3_put
            + bytes_stored / 1024**3 * self.s3_gb_month
        )


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
