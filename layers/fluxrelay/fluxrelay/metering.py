"""Cost per job at the handler edge: each invocation that works on a job adds what it spent.

`@metered(state_transitions=N)` wraps a Lambda handler: it opens the invocation's meter (charged
to the event's `job_id`, or to the job a route `bind`s), times the handler, and at its end adds
one invocation, its milliseconds (and MB-milliseconds, what Lambda bills), the state transitions
the task stands for and whatever the use case counted, in one atomic write on the job.

Example:
    @metered(state_transitions=CHECK_RESULT_TRANSITIONS)
    def handler(event, context): ...
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from fluxrelay import composition
from fluxrelay.domain.jobs import JobItem
from fluxrelay.domain.usage import Meter, metering
from fluxrelay.observability import MetricName, count, logger, metrics

Handler = TypeVar("Handler", bound=Callable[..., Any])


def metered(
    *, state_transitions: int = 0, last: Callable[[Any], bool] | None = None
) -> Callable[[Handler], Handler]:
    """`last(result)` tells an invocation after which nothing more is spent on the job: its total
    cost then goes to the `JobCostUsd` and `JobStateTransitions` metrics."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            job_id = event.get("job_id") if isinstance(event, Mapping) else None
            started = time.perf_counter()
            result: Any = None
            with metering(job_id if isinstance(job_id, str) else None) as meter:
                try:
                    result = handler(event, context)
                    return result
                finally:
                    job = _record(meter, started, context, state_transitions)
                    if job is not None and result is not None and last is not None and last(result):
                        _report_cost(job)

        return wrapper  # type: ignore[return-value]

    return decorate


def _record(meter: Meter, started: float, context: Any, state_transitions: int) -> JobItem | None:
    if meter.job_id is None:
        return None
    # Metadata, not a dimension: the invocation's EMF record names its job (for Logs Insights).
    metrics.add_metadata(key="job_id", value=meter.job_id)
    ms = math.ceil((time.perf_counter() - started) * 1000)
    usage = meter.usage
    usage.lambda_invocations += 1
    usage.lambda_ms += ms
    usage.lambda_mb_ms += ms * int(getattr(context, "memory_limit_in_mb", 0) or 0)
    usage.state_transitions += state_transitions
    try:
        return composition.container().jobs.add_usage(meter.job_id, usage)
    except Exception:
        # A true boundary: the cost record is an estimate and must never fail the task itself
        # (a failed Notify would be retried and deliver its webhook twice).
        logger.warning("the job's usage was not recorded", exc_info=True)
        return None


def _report_cost(job: JobItem) -> None:
    cost = composition.container().presenter.metrics(job)
    metrics.add_metric(name=MetricName.JOB_COST.value, unit=MetricUnit.NoUnit, value=cost.estimated_cost_usd)
    count(MetricName.JOB_STATE_TRANSITIONS, job.usage.state_transitions)
