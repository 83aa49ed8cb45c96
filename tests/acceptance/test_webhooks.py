"""Signed webhooks, verified the way a receiver would: the `standardwebhooks` library and the
secret from `GET /api/v3/webhook/secret`; the delivery log and its replay."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fluxrelay_local.receiver import Delivery
from tests.acceptance.checks import BODY, JOB_TIMEOUT, Caller, Hooks, assert_output_image
from tests.acceptance.target import Target
from tests.support.stack import Api


@pytest.fixture(scope="module")
def secret(webhook_caller: Api) -> str:
    response = webhook_caller.get("/api/v3/webhook/secret")
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["secret"])


@pytest.fixture(scope="module")
def delivered(webhook_caller: Api, hooks: Hooks) -> tuple[str, Delivery]:
    """One job with a webhook (the only image these tests generate) and its first delivery."""
    submitted = webhook_caller.submit(BODY, webhook=hooks.url)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["data"]["id"]
    return job_id, hooks.receiver.wait_for_job(job_id, timeout=JOB_TIMEOUT)


def test_finished_job_is_posted_signed_to_the_webhook(
    target: Target, secret: str, delivered: tuple[str, Delivery]
) -> None:
    job_id, delivery = delivered
    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert (payload["id"], payload["status"]) == (job_id, "completed")
    (url,) = payload["outputs"]
    assert_output_image(url, target.bucket, job_id)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(delivery.body.replace(b"completed", b"failed"), delivery.headers)


def deliveries_of(hooks: Hooks, job_id: str) -> list[Delivery]:
    return [d for d in hooks.receiver.deliveries if d.json().get("id") == job_id]


def test_the_delivery_log_shows_the_attempt_that_delivered(
    webhook_caller: Api, hooks: Hooks, delivered: tuple[str, Delivery]
) -> None:
    job_id, _ = delivered
    response = webhook_caller.get(f"/api/v3/predictions/{job_id}/webhooks")
    assert response.status_code == 200, response.text
    log = response.json()["data"]
    assert (log["id"], log["webhook_id"], log["state"]) == (job_id, f"msg_{job_id}", "delivered")
    assert log["url_host"] == urlsplit(hooks.url).netloc
    first = log["items"][-1]
    assert (first["attempt"], first["trigger"], first["outcome"]) == (1, "workflow", "delivered")
    assert (first["status_code"], first["error"], first["next_retry_at"]) == (200, None, None)
    assert first["latency_ms"] >= 0
    assert log["attempts"] == len(log["items"])


def test_a_replay_is_the_same_webhook_id_freshly_signed_and_is_logged(
    webhook_caller: Api, hooks: Hooks, secret: str, delivered: tuple[str, Delivery]
) -> None:
    job_id, first = delivered
    before = len(deliveries_of(hooks, job_id))

    response = webhook_caller.post(f"/api/v3/predictions/{job_id}/webhooks/redeliver")

    assert response.status_code == 200, response.text
    log = response.json()["data"]
    newest = log["items"][0]
    assert (newest["trigger"], newest["outcome"], newest["status_code"]) == ("replay", "delivered", 200)
    assert newest["attempt"] == log["attempts"]
    replayed = deliveries_of(hooks, job_id)[before:]
    assert len(replayed) == 1
    again = replayed[0]
    assert again.headers["Webhook-Id"] == first.headers["Webhook-Id"] == f"msg_{job_id}"
    assert int(again.headers["Webhook-Timestamp"]) >= int(first.headers["Webhook-Timestamp"])
    assert Webhook(secret).verify(again.body, again.headers)["id"] == job_id
    logged = webhook_caller.get(f"/api/v3/predictions/{job_id}/webhooks").json()["data"]
    assert logged["items"][0] == newest


def test_another_owner_can_neither_read_nor_replay_the_delivery_log(
    bob: Caller, hooks: Hooks, delivered: tuple[str, Delivery]
) -> None:
    job_id, _ = delivered
    before = len(deliveries_of(hooks, job_id))
    for response in (
        bob.get(f"/api/v3/predictions/{job_id}/webhooks"),
        bob.post(f"/api/v3/predictions/{job_id}/webhooks/redeliver"),
    ):
        assert response.status_code == 404, response.text
        assert job_id not in response.text
    assert len(deliveries_of(hooks, job_id)) == before


def around(caller: Api, job_id: str) -> dict[str, str]:
    """Filters of a time range that holds the job: a second either side of its creation."""
    created = datetime.fromisoformat(caller.get(f"/api/v3/predictions/{job_id}").json()["data"]["created_at"])
    return {
        "created_after": (created - timedelta(seconds=1)).isoformat(),
        "created_before": (created + timedelta(seconds=1)).isoformat(),
    }


def test_a_bulk_replay_resends_each_finished_job_of_the_range_once(
    webhook_caller: Api, hooks: Hooks, secret: str, delivered: tuple[str, Delivery]
) -> None:
    job_id, first = delivered
    before = len(deliveries_of(hooks, job_id))

    response = webhook_caller.post(
        "/api/v3/webhooks/redeliver", json={**around(webhook_caller, job_id), "status": "completed"}
    )

    assert response.status_code == 200, response.text
    report = response.json()["data"]
    (mine,) = [item for item in report["items"] if item["id"] == job_id]
    assert (mine["outcome"], mine["status_code"], mine["error"]) == ("redelivered", 200, None)
    assert report["matched"] == report["redelivered"] + report["failed"] + report["skipped"] >= 1
    assert report["next_cursor"] is None
    (again,) = deliveries_of(hooks, job_id)[before:]
    assert again.headers["Webhook-Id"] == first.headers["Webhook-Id"]
    assert Webhook(secret).verify(again.body, again.headers)["id"] == job_id
    newest = webhook_caller.get(f"/api/v3/predictions/{job_id}/webhooks").json()["data"]["items"][0]
    assert (newest["trigger"], newest["outcome"]) == ("replay", "delivered")


def test_a_bulk_replay_never_reaches_another_owners_jobs(
    webhook_caller: Api, bob: Caller, hooks: Hooks, delivered: tuple[str, Delivery]
) -> None:
    job_id, _ = delivered
    before = len(deliveries_of(hooks, job_id))

    response = bob.post("/api/v3/webhooks/redeliver", json=around(webhook_caller, job_id))

    assert response.status_code == 200, response.text
    assert job_id not in response.text
    assert len(deliveries_of(hooks, job_id)) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 21}, "limit"),
        ({"status": "done"}, "status"),
        ({"created_after": "monday"}, "created_after"),
        ({"created_after": "2026-12-02", "created_before": "2026-12-01"}, "created_before"),
        ({"cursor": "made-up"}, "cursor"),
        ({"since": "2026-12-01"}, "since"),
    ],
)
def test_a_bulk_replay_with_a_bad_filter_is_a_400_naming_the_field(
    webhook_caller: Api, body: dict[str, Any], field: str
) -> None:
    response = webhook_caller.post("/api/v3/webhooks/redeliver", json=body)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith(field) or f"'{field}'" in message, message
