"""Powertools Logger and Metrics: one instance each, shared by every handler.

The service name, namespace and log level come from the POWERTOOLS_* variables the template sets.
Metrics are CloudWatch EMF lines in the functions' logs (no API call); every metric the
dashboard shows is named in `MetricName`, which the template's dashboard is checked against.

There is no Powertools Tracer: building one in a function loads the X-Ray SDK and patches boto3
and httpx, which cost a cold start more than boto3 and its clients together. The functions'
active tracing (`Tracing: Active`) and the state machine's tracing still record every invocation
and every workflow step in X-Ray; only the per-call subsegments inside an invocation are gone.
"""

import os
from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

# The template sets the namespace; outside Lambda (tests, tools) the same default applies, so
# code that emits a metric never fails for want of one.
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "FluxRelay"

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)


class MetricName(StrEnum):
    JOBS_SUBMITTED = "JobsSubmitted"
    JOBS_FINISHED = "JobsFinished"  # dimension status: each terminal status
    SUBMIT_LATENCY = "SubmitLatency"  # ms, the submit call (sync mode excluded)
    WEBHOOK_LATENCY = "WebhookLatency"  # ms, job finished -> webhook delivered
    WEBHOOK_FAILURES = "WebhookFailures"  # failed delivery attempts
    WEBHOOK_GAVE_UP = "WebhookDeliveriesGivenUp"  # retries ended (span over, or 410 Gone)
    UPSTREAM_ERRORS = "UpstreamErrors"  # WaveSpeed unreachable, rate limiting or refusing
    UPSTREAM_SLOTS_IN_USE = "UpstreamSlotsInUse"  # tasks running upstream, after each dispatch
    UPSTREAM_CONCURRENCY_CAP = "UpstreamConcurrencyCap"
    DISPATCH_DEFERRED = "DispatchDeferred"  # a job left queued: every upstream slot was taken
    JOB_COST = "JobCostUsd"  # estimated orchestration cost of a finished job
    JOB_STATE_TRANSITIONS = "JobStateTransitions"


def count(name: MetricName, value: float = 1) -> None:
    metrics.add_metric(name=name.value, unit=MetricUnit.Count, value=value)


def milliseconds(name: MetricName, value: float) -> None:
    metrics.add_metric(name=name.value, unit=MetricUnit.Milliseconds, value=value)


def count_job_finished(status: str, job_id: str) -> None:
    """`JobsFinished` with its own `status` dimension (a dimension added to `metrics` would land
    on every metric of the invocation and split them all), and the job id as metadata. Its own
    EMF record, flushed at once; like `metrics`, it prints nothing when metrics are disabled
    (Powertools' `single_metric` would print regardless)."""
    metric = EphemeralMetrics(namespace=NAMESPACE)
    metric.set_default_dimensions(**metrics.default_dimensions)
    metric.add_dimension(name="status", value=status)
    metric.add_metric(name=MetricName.JOBS_FINISHED.value, unit=MetricUnit.Count, value=1)
    metric.add_metadata(key="job_id", value=job_id)
    metric.flush_metrics()
