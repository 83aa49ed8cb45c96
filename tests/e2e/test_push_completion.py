"""Push completion end to end: the stand-in's signed webhook reaches our upstream-webhook route,
which wakes the parked workflow; the poll stays the safety net when the push is lost.

The poll wait is set long (300 s, scaled to 3 s): a job that
finishes on its first check did so because the push woke it, and the execution history says
which way each wait ended (TaskSucceeded = woken, TaskTimedOut = the poll fallback).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from fluxrelay.adapters.wavespeed import sign_wavespeed_webhook
from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, job_item, wait_endings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    # Scaled by 1/100: a 3 s poll wait against a ~20 ms task, so a push that is slow on a loaded
    # machine still arrives well before the wait's timeout.
    return {
        "parameters": {"ExpectedSecondsPerImage": "300", "PollIntervalSeconds": "300"},
        "time_scale": 0.01,
    }


def run_job(alice: Api, stack: LocalStack) -> tuple[str, dict[str, Any]]:
    response = alice.submit({"prompt": f"a heron {uuid.uuid4().hex[:8]}", "size": "256*256"})
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["id"]
    assert alice.wait_finished(job_id)["status"] == "completed"
    stack.wait_for_execution((job_item(stack, job_id) or {})["execution_arn"])
    item = job_item(stack, job_id)
    assert item is not None
    return job_id, item


def states_entered(stack: LocalStack, execution_arn: str) -> list[str]:
    events = stack.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def result_gets(standin: Any, upstream_id: str) -> int:
    return sum(
        1 for r in standin.received if r["method"] == "GET" and f"/predictions/{upstream_id}" in r["path"]
    )


def test_the_upstream_push_wakes_the_workflow_which_stores_its_result_without_polling(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    job_id, item = run_job(alice, stack)
    assert wait_endings(stack, item["execution_arn"]) == ["TaskSucceeded"]
    # The signed push carried the completed result: no GET of it, and no check at all.
    assert result_gets(standin, item["upstream_id"]) == 0
    assert "CheckResult" not in states_entered(stack, item["execution_arn"])
    (delivery,) = [d for d in standin.webhook_deliveries if d["task_id"] == item["upstream_id"]]
    assert delivery["url"] == f"{stack.api_url}/api/v3/upstream/webhooks/{job_id}"
    assert delivery["status"] == 200
    assert item["wake_token"] is None


def test_a_lost_push_falls_back_to_the_poll(stack: LocalStack, alice: Api, standin: Any) -> None:
    standin.faults.webhooks_lost = 1
    _, item = run_job(alice, stack)
    assert wait_endings(stack, item["execution_arn"])[0] == "TaskTimedOut"
    assert result_gets(standin, item["upstream_id"]) >= 1  # the poll found the result
    assert not [d for d in standin.webhook_deliveries if d["task_id"] == item["upstream_id"]]


# --------------------------------------------------------------------------- the route itself
def post_push(
    stack: LocalStack,
    job_id: str,
    body: bytes,
    *,
    secret: str,
    timestamp: int | None = None,
    signature: str | None = None,
) -> httpx.Response:
    webhook_id = f"msg_{uuid.uuid4().hex}"
    sent_at = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": sent_at,
        "webhook-signature": signature or sign_wavespeed_webhook(secret, webhook_id, sent_at, body),
    }
    return httpx.post(f"{stack.api_url}/api/v3/upstream/webhooks/{job_id}", content=body, headers=headers)


@pytest.mark.parametrize(
    "forgery",
    ["wrong secret", "stale timestamp", "standard webhooks v1", "no signature"],
)
def test_the_push_route_accepts_only_a_fresh_wavespeed_signature(
    stack: LocalStack, alice: Api, standin: Any, forgery: str
) -> None:
    job_id, item = run_job(alice, stack)
    body = json.dumps({"id": item["upstream_id"], "status": "completed", "outputs": []}).encode()
    secret = standin.webhook_secret
    if forgery == "wrong secret":
        response = post_push(stack, job_id, body, secret="whsec_not-the-account-secret")
    elif forgery == "stale timestamp":
        response = post_push(stack, job_id, body, secret=secret, timestamp=int(time.time()) - 301)
    elif forgery == "standard webhooks v1":
        response = post_push(stack, job_id, body, secret=secret, signature="v1,c2lnbmF0dXJl")
    else:
        response = httpx.post(f"{stack.api_url}/api/v3/upstream/webhooks/{job_id}", content=body)
    assert response.status_code == 401
    assert response.json()["code"] == 401
    assert response.json()["data"] is None


def test_late_and_duplicate_pushes_are_accepted_and_change_nothing(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    job_id, item = run_job(alice, stack)
    body = json.dumps({"id": item["upstream_id"], "status": "completed", "outputs": []}).encode()
    for _ in range(2):
        response = post_push(stack, job_id, body, secret=standin.webhook_secret)
        assert response.status_code == 200
        assert response.json()["data"] == {"status": "ignored"}
    assert job_item(stack, job_id) == item


def test_a_signed_push_for_an_unknown_job_is_not_found(stack: LocalStack, standin: Any) -> None:
    body = json.dumps({"id": "0" * 32, "status": "completed"}).encode()
    response = post_push(stack, "f" * 32, body, secret=standin.webhook_secret)
    assert response.status_code == 404
