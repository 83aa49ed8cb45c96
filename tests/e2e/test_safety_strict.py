"""The SSRF guard under the deployed rules: the local stack started with
`url_policy="strict"` (FLUXRELAY_URL_POLICY=strict) refuses local webhooks at submit, and a
webhook URL that is unsafe by delivery time is never posted to: the attempt is recorded as
failed on the job."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, WebhookReceiver, wait_for

pytestmark = pytest.mark.e2e

# A public address as an IP literal: accepted at submit without any DNS lookup, and never
# contacted (the test replaces it before the job can finish).
PUBLIC_HOOK = "https://93.184.215.14/hook"


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {"url_policy": "strict"}


def submissions(stack: LocalStack, marker: str) -> list[dict[str, Any]]:
    seen = httpx.get(f"{stack.upstream_url}/_standin/submissions").json()["data"]
    return [s for s in seen if marker in s["input"]["prompt"]]


def set_faults(stack: LocalStack, **faults: Any) -> None:
    httpx.post(f"{stack.upstream_url}/_standin/faults", json=faults).raise_for_status()


def test_the_stack_runs_the_strict_policy(stack: LocalStack) -> None:
    assert stack.info["url_policy"] == "strict"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hook", "must use https"),  # fine in development, not here
        ("https://127.0.0.1:{port}/hook", "loopback"),
        ("http://example.com/x", "must use https"),  # refused before any DNS lookup
        ("https://[::1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private address"),
    ],
)
def test_local_and_plain_http_webhooks_are_refused_at_submit(
    stack: LocalStack, alice: Api, url: str, reason: str
) -> None:
    marker = uuid.uuid4().hex
    with WebhookReceiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        refused = alice.submit({"prompt": f"strict {marker}"}, webhook=url.format(port=port))
        assert receiver.attempts == 0

    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["code"] == 400
    assert body["data"] is None
    assert reason in body["message"]
    assert submissions(stack, marker) == []


def test_a_webhook_url_unsafe_at_delivery_time_is_not_posted_and_the_attempt_is_recorded(
    stack: LocalStack, alice: Api
) -> None:
    marker = uuid.uuid4().hex
    store = DynamoJobStore(stack.table, client=stack.client("dynamodb"))
    set_faults(stack, max_concurrent=0)  # hold every upstream task in `created`
    try:
        submitted = alice.submit({"prompt": f"rebinding {marker}"}, webhook=PUBLIC_HOOK)
        assert submitted.status_code == 200, submitted.text
        job_id = submitted.json()["data"]["id"]
        with WebhookReceiver() as receiver:
            # The URL now points at us (as a DNS rebinding would): the job cannot have finished,
            # its upstream task is held.
            job = store.get(job_id)
            assert job is not None
            assert job.webhook is not None
            assert not job.status.terminal
            store.update(job_id, webhook=job.webhook.model_copy(update={"url": receiver.url}))
            set_faults(stack, max_concurrent=None)

            def attempted() -> Any:
                current = store.get(job_id)
                hook = current.webhook if current else None
                return hook if hook is not None and hook.attempts >= 1 else None

            hook = wait_for(attempted, timeout=30, what="the first webhook attempt")
            assert receiver.attempts == 0
    finally:
        set_faults(stack, max_concurrent=None)

    assert hook.state in ("retrying", "gave_up")
    assert hook.last_status is None
    assert hook.last_error is not None
    assert "must use https" in hook.last_error
