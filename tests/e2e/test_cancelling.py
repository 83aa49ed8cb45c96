"""Cancel end to end: the local stack's workflow ends a cancelled job promptly and notifies it
once (SNS and the webhook), and a job cancelled while queued never reaches the upstream.

One upstream slot (`MaxConcurrentUpstreamTasks=1`), so a `[hang]` job (never finished by the
stand-in) keeps the next job queued. Every job here ends: no workflow is left polling. Every poll
wait is long (300 s, scaled to 3 s) and a `[hang]` job is never pushed: a wait that ends woken
(TaskSucceeded in the execution history) was woken by the cancel, not by its timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fluxrelay_local.stack import LocalStack
from tests.support.stack import (
    Api,
    WebhookReceiver,
    end_hanging_job,
    job_item,
    settings_env,
    sns_events_for,
    sns_queue,
    standin_of,
    wait_endings,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    long_waits = dict.fromkeys(
        ("ExpectedSecondsPerImage", "PollIntervalSeconds", "PollMaxIntervalSeconds"), "300"
    )
    return {"parameters": {"MaxConcurrentUpstreamTasks": "1", **long_waits}, "time_scale": 0.01}


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def hanging(api: Api, marker: str, webhook: str | None = None) -> str:
    answer = api.submit({"prompt": f"{marker} [hang]", "size": "256*256"}, webhook=webhook)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["id"])


def cancel(api: Api, job_id: str) -> dict[str, Any]:
    answer = api.post(f"/api/v3/predictions/{job_id}/cancel")
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


def workflow_ended(stack: LocalStack, job_id: str) -> dict[str, Any]:
    """The job's generation execution, once it has succeeded (it notified and stopped)."""
    sfn = stack.client("stepfunctions")

    def ended() -> dict[str, Any] | None:
        arn = (job_item(stack, job_id) or {}).get("execution_arn")
        execution = sfn.describe_execution(executionArn=arn) if arn else None
        return execution if execution and execution["status"] != "RUNNING" else None

    execution = wait_for(ended, timeout=30, what=f"the workflow of {job_id} to end")
    assert execution["status"] == "SUCCEEDED", execution
    return execution


def woken_at_the_end(stack: LocalStack, job_id: str) -> bool:
    """Whether the job's last wait was woken (rather than timed out) before its workflow ended."""
    return wait_endings(stack, workflow_ended(stack, job_id)["executionArn"])[-1] == "TaskSucceeded"


def test_a_running_job_cancelled_stops_its_workflow_and_is_notified_once(
    stack: LocalStack, alice: Api, hook: WebhookReceiver
) -> None:
    marker = uuid.uuid4().hex
    with sns_queue(stack) as drain:
        job_id = hanging(alice, marker, webhook=hook.url)
        wait_for(lambda: (job_item(stack, job_id) or {}).get("upstream_id"), what="the upstream submit")

        data = cancel(alice, job_id)
        assert woken_at_the_end(stack, job_id)

        assert data["status"] == "cancelled"
        assert "may still bill" in data["error"]
        delivery = hook.wait_for_job(job_id)
        assert (delivery.json()["status"], delivery.json()["error_type"]) == ("cancelled", "cancelled")
        events = wait_for(lambda: sns_events_for(drain, job_id), what="the SNS event")
    assert [e["status"] for e in events] == ["cancelled"]
    assert [d for d in hook.deliveries if d.json().get("id") == job_id] == [delivery]
    assert job_item(stack, job_id)["outputs"] == []


def test_a_queued_job_cancelled_is_never_sent_upstream(stack: LocalStack, alice: Api) -> None:
    blocker, queued = uuid.uuid4().hex, uuid.uuid4().hex
    blocker_id = hanging(alice, blocker)
    queued_id = hanging(alice, queued)
    assert job_item(stack, queued_id).get("upstream_id") is None  # the one slot is taken

    data = cancel(alice, queued_id)
    assert woken_at_the_end(stack, queued_id)
    cancel(alice, blocker_id)
    assert woken_at_the_end(stack, blocker_id)

    assert "nothing is billed" in data["error"]
    sent = [s["input"]["prompt"] for s in standin_of(stack).submissions]
    assert any(blocker in prompt for prompt in sent)
    assert not any(queued in prompt for prompt in sent)


def test_with_keep_a_cancelled_running_job_waits_for_its_images_and_is_notified_once(
    stack: LocalStack, alice: Api, hook: WebhookReceiver
) -> None:
    marker = uuid.uuid4().hex
    with settings_env(CANCELLED_OUTPUTS="keep"), sns_queue(stack) as drain:
        job_id = hanging(alice, marker, webhook=hook.url)
        item = wait_for(lambda: running_upstream(stack, job_id), what="the upstream submit")
        arn = item["execution_arn"]

        cancel(alice, job_id)
        # The workflow is not woken: a wait times out, and its check follows the upstream task
        # into another wait instead of notifying.
        waited = len(wait_endings(stack, arn))
        wait_for(lambda: waits_entered(stack, arn) > waited + 1, timeout=30, what="a wait after the cancel")
        assert "TaskSucceeded" not in wait_endings(stack, arn)
        assert sns_events_for(drain, job_id) == []
        end_hanging_job(stack, alice, job_id)  # the task never ends: its deadline ends the wait

        workflow_ended(stack, job_id)
        delivery = hook.wait_for_job(job_id)
        events = wait_for(lambda: sns_events_for(drain, job_id), what="the SNS event")
    assert [e["status"] for e in events] == ["cancelled"]
    assert delivery.json()["status"] == "cancelled"
    assert [d for d in hook.deliveries if d.json().get("id") == job_id] == [delivery]


def running_upstream(stack: LocalStack, job_id: str) -> dict[str, Any] | None:
    item = job_item(stack, job_id) or {}
    return item if item.get("upstream_id") and item.get("execution_arn") else None


def waits_entered(stack: LocalStack, execution_arn: str) -> int:
    events = stack.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return sum(
        1
        for e in events
        if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == "WaitForResult"
    )
