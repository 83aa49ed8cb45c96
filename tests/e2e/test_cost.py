"""Cost per job: `metrics` on the prediction, counted against what really ran on the local stack
(the execution history of the real state machine, the Lambda runner, the stand-in, the bucket)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from fluxrelay.domain.pricing import PriceTable
from fluxrelay.domain.usage import JobUsage
from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, WebhookReceiver, job_item, standin_of, wait_for

pytestmark = pytest.mark.e2e


def states_entered(stack: LocalStack, execution_arn: str) -> list[dict[str, Any]]:
    sfn = stack.client("stepfunctions")
    events = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [e for page in events for e in page["events"] if e["type"].endswith("StateEntered")]


def emitted_metrics(output: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF records the handlers printed: {"name", "dimensions", "value", "job_id"}."""
    records = []
    for line in output.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            dimensions = {d: doc[d] for group in directive["Dimensions"] for d in group}
            for metric in directive["Metrics"]:
                for value in doc[metric["Name"]]:
                    records.append(
                        {
                            "name": metric["Name"],
                            "dimensions": dimensions,
                            "value": value,
                            "job_id": doc.get("job_id"),
                        }
                    )
    return records


def test_a_job_reports_what_it_cost_counted_from_what_really_ran(
    stack: LocalStack, alice: Api, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local stack turns EMF output off (no CloudWatch here); this test reads it from stdout.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    invocations_before = Counter(stack.runner.invocations)
    # Given a two-image job whose first webhook delivery fails (so Notify runs twice)
    with WebhookReceiver(statuses=[500]) as receiver:
        body = {"prompt": "a lighthouse at dusk", "size": "512*384", "num_images": 2, "output_format": "png"}
        job_id = alice.submit(body, webhook=receiver.url).json()["data"]["id"]
        alice.wait_finished(job_id)
        execution_arn = wait_for(lambda: (job_item(stack, job_id) or {}).get("execution_arn"))
        assert stack.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"
        assert receiver.attempts == 2

    # When the caller reads the prediction
    data = alice.get(f"/api/v3/predictions/{job_id}").json()["data"]

    # Then its metrics match what ran for it
    metrics = data["metrics"]
    entered = states_entered(stack, execution_arn)
    assert metrics["state_transitions"] == len(entered)
    ran = Counter(stack.runner.invocations) - invocations_before
    tasks = sum(1 for e in entered if e["type"] == "TaskStateEntered")
    assert metrics["lambda_invocations"] == tasks + 1  # the workflow's tasks and the submit call
    assert sum(ran.values()) >= metrics["lambda_invocations"]  # plus authorizer and result reads
    assert metrics["lambda_ms"] > 0
    upstream_id = job_item(stack, job_id)["upstream_id"]
    result_gets = [
        r
        for r in standin_of(stack).received
        if r["method"] == "GET" and r["path"].startswith(f"/api/v3/predictions/{upstream_id}")
    ]
    # Counted as they happen: none when the upstream's push carried the result.
    assert metrics["upstream_polls"] == len(result_gets)
    s3 = stack.client("s3")
    stored = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"outputs/{job_id}/")["Contents"]
    assert (metrics["images_stored"], metrics["bytes_stored"]) == (2, sum(o["Size"] for o in stored))
    assert metrics["predict_time"] == data["timings"]["inference"] / 1000
    assert metrics["total_time"] > 0
    item_usage = JobUsage.model_validate(
        {k.removeprefix("usage_"): v for k, v in job_item(stack, job_id).items() if k.startswith("usage_")}
    )
    expected = PriceTable().estimate(item_usage, objects_stored=2, bytes_stored=metrics["bytes_stored"])
    assert metrics["estimated_cost_usd"] == pytest.approx(expected)
    transitions_cost = metrics["state_transitions"] * PriceTable().step_functions_transition
    assert metrics["estimated_cost_usd"] > transitions_cost
    # The metrics are an addition to the wire format: the webhook body stays WaveSpeed's shape.
    assert "metrics" not in receiver.deliveries[0].json()

    # And the functions emitted the dashboard's metrics for it, the cost one equal to the above
    emitted = emitted_metrics(capfd.readouterr().out)
    # (The `service` dimension comes from POWERTOOLS_SERVICE_NAME when the code is first imported:
    # in this test process that may be before the stack set it, so it is not checked here.)
    # JobsFinished is flushed on its own with this job's id, so it is found by that id.
    [finished] = [r for r in emitted if r["name"] == "JobsFinished" and r["job_id"] == job_id]
    assert finished["dimensions"].get("status") == "completed"
    # The handlers run as threads of this process and share one metric set, so a figure of this
    # job may be flushed by another thread's invocation under that invocation's job id (on Lambda
    # each invocation has its own process): each figure must be among everything emitted.
    values: dict[str, list[Any]] = {}
    for record in emitted:
        values.setdefault(record["name"], []).append(record["value"])
    assert pytest.approx(metrics["estimated_cost_usd"]) in values["JobCostUsd"]
    assert metrics["state_transitions"] in values["JobStateTransitions"]
    assert 1 in values["WebhookFailures"]
    assert all(v > 0 for v in values["WebhookLatency"] + values["SubmitLatency"])
    cap = int(stack.deployed.parameters["MaxConcurrentUpstreamTasks"])
    assert cap in values["UpstreamConcurrencyCap"]
    assert any(0 < v <= cap for v in values["UpstreamSlotsInUse"])
