"""The sweeper end to end: each crash window leaves a job behind, one sweep resumes (or ends) it,
and the job ends terminal with exactly one SNS message and exactly one delivered webhook.

The windows are made the way a crash leaves them: the job item written by the real services with
no workflow started (the function died), or a running execution stopped (aborted, or a local
stack stopped mid-flight). The sweeper runs as the deployed function, invoked the way its
schedule would; its grace period is 0 here so a job just left behind counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fluxrelay.composition import container
from fluxrelay.domain.jobs import JobItem, JobStatus
from fluxrelay.models.wire import GenerationRequest
from fluxrelay_local.stack import LocalStack
from tests.support.stack import (
    Api,
    WebhookReceiver,
    job_item,
    settings_env,
    sns_events_for,
    sns_queue,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def drain(stack: LocalStack) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    with sns_queue(stack) as d:
        yield d


@pytest.fixture(autouse=True)
def no_grace() -> Iterator[None]:
    with settings_env(SWEEP_GRACE_SECONDS="0"):
        yield


def request() -> GenerationRequest:
    return GenerationRequest.model_validate({"prompt": f"a kite {uuid.uuid4().hex[:8]}", "size": "256*256"})


def recorded(stack: LocalStack, receiver: WebhookReceiver) -> tuple[JobItem, GenerationRequest]:
    """A job as the API records it before anything else happens."""
    req = request()
    job = container().submit.new_job("alice", req, webhook_url=receiver.url, result_base_url=stack.api_url)
    return job, req


def sweep(stack: LocalStack) -> dict[str, Any]:
    return dict(stack.invoke("SweepJobsFunction", {"source": "aws.events", "detail": {}}))


def assert_ended_once(
    stack: LocalStack,
    receiver: WebhookReceiver,
    drain: Callable[[], list[dict[str, Any]]],
    job_id: str,
    status: str = "completed",
) -> None:
    delivery = receiver.wait_for_job(job_id, timeout=30)
    item = job_item(stack, job_id) or {}
    stack.wait_for_execution(item["execution_arn"], timeout=30)
    item = job_item(stack, job_id) or {}
    assert item["status"] == status
    assert "active" not in item  # out of the sweeper's index
    assert len(wait_for(lambda: sns_events_for(drain, job_id), what="the SNS message")) == 1
    assert sweep(stack)["resumed"] == 0  # nothing left to do
    assert len(sns_events_for(drain, job_id)) == 1
    deliveries = [d for d in receiver.deliveries if d.json()["id"] == job_id]
    assert (
        [d.headers["Webhook-Id"] for d in deliveries] == [delivery.headers["Webhook-Id"]] == [f"msg_{job_id}"]
    )


def test_a_job_recorded_before_the_submit_is_submitted_once_and_completes(
    stack: LocalStack, receiver: WebhookReceiver, drain: Any, standin: Any
) -> None:
    job, req = recorded(stack, receiver)  # the function died before submitting
    assert sweep(stack)["resumed"] >= 1
    assert_ended_once(stack, receiver, drain, job.job_id)
    assert len([s for s in standin.submissions if s["input"]["prompt"] == req.prompt]) == 1


def test_a_job_submitted_but_never_started_polls_its_task_and_completes(
    stack: LocalStack, receiver: WebhookReceiver, drain: Any, standin: Any
) -> None:
    job, req = recorded(stack, receiver)
    container().dispatcher.dispatch(job, req)  # sent upstream; died before starting the workflow
    assert sweep(stack)["resumed"] >= 1
    assert_ended_once(stack, receiver, drain, job.job_id)
    assert len([s for s in standin.submissions if s["input"]["prompt"] == req.prompt]) == 1


def test_a_job_that_died_inside_store_outputs_is_completed(
    stack: LocalStack, receiver: WebhookReceiver, drain: Any
) -> None:
    job, req = recorded(stack, receiver)
    container().dispatcher.dispatch(job, req)
    # CheckResult saw the task completed and recorded its outputs; StoreOutputs never finished.
    wait_for(
        lambda: stack.invoke("CheckResultFunction", {"job_id": job.job_id})["next"] == "store_outputs",
        what="the upstream task to complete",
    )
    assert (job_item(stack, job.job_id) or {})["status"] == JobStatus.PROCESSING.value
    assert sweep(stack)["resumed"] >= 1
    assert_ended_once(stack, receiver, drain, job.job_id)


@pytest.mark.parametrize("how", ["aborted", "stack stopped mid-flight"])
def test_a_job_whose_execution_was_stopped_is_resumed(
    stack: LocalStack, alice: Api, receiver: WebhookReceiver, drain: Any, standin: Any, how: str
) -> None:
    # The task is held upstream until the test lets it end, so the workflow is surely mid-flight.
    response = alice.submit({"prompt": f"a kite {uuid.uuid4().hex[:8]} [hang]"}, webhook=receiver.url)
    job_id = response.json()["data"]["id"]
    task_id = wait_for(lambda: (job_item(stack, job_id) or {}).get("upstream_id"), what="its task")
    arn = (job_item(stack, job_id) or {})["execution_arn"]
    if how == "aborted":
        stack.client("stepfunctions").stop_execution(executionArn=arn, cause="aborted by an operator")
    else:
        stack.stop_executions()  # what LocalStack.stop() does to every running execution
    # (A stop that lands inside a Lambda task can end the execution FAILED in moto instead of
    # ABORTED, an emulator quirk; either way the workflow is gone and the sweeper must act.)
    assert stack.wait_for_execution(arn)["status"] in {"ABORTED", "FAILED"}
    assert sweep(stack)["resumed"] >= 1
    standin.finish(task_id)
    assert_ended_once(stack, receiver, drain, job_id)


def test_a_job_past_its_deadline_is_ended_as_timeout_and_notified_once(
    stack: LocalStack, receiver: WebhookReceiver, drain: Any, standin: Any
) -> None:
    standin.faults.never_finish_next = 1
    job, req = recorded(stack, receiver)
    container().dispatcher.dispatch(job, req)  # the task never finishes; no workflow runs
    container().jobs.update(job.job_id, deadline_at=datetime.now(UTC) - timedelta(seconds=1))
    assert sweep(stack)["ended"] >= 1
    assert_ended_once(stack, receiver, drain, job.job_id, status="timeout")


def test_a_job_whose_execution_stopped_between_its_end_and_notify_is_notified_once(
    stack: LocalStack,
    alice: Api,
    receiver: WebhookReceiver,
    drain: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = container().store_outputs
    complete = service.store_outputs

    def complete_then_stop(job_id: str) -> Any:
        done = complete(job_id)  # the terminal write: the job is completed
        arn = (job_item(stack, job_id) or {})["execution_arn"]
        stack.client("stepfunctions").stop_execution(executionArn=arn, cause="stopped before Notify")
        return done

    with monkeypatch.context() as patched:
        patched.setattr(service, "store_outputs", complete_then_stop)
        response = alice.submit({"prompt": f"a kite {uuid.uuid4().hex[:8]}"}, webhook=receiver.url)
        job_id = response.json()["data"]["id"]
        arn = wait_for(lambda: (job_item(stack, job_id) or {}).get("execution_arn"), what="its execution")
        assert stack.wait_for_execution(arn, timeout=30)["status"] in {"ABORTED", "FAILED"}
    item = job_item(stack, job_id) or {}
    # Ended, never notified: it keeps its place in the sweeper's index.
    assert (item["status"], item.get("sns_published"), item.get("active")) == ("completed", False, "1")
    assert sns_events_for(drain, job_id) == []
    assert [d for d in receiver.deliveries if d.json()["id"] == job_id] == []
    assert sweep(stack)["notified"] >= 1
    assert_ended_once(stack, receiver, drain, job_id)
