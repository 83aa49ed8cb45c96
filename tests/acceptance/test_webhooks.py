"""Signed webhooks, verified the way a receiver would: the `standardwebhooks` library and the
secret from `GET /api/v3/webhook/secret`."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.acceptance.checks import BODY, JOB_TIMEOUT, Hooks, assert_output_image
from tests.acceptance.target import Target
from tests.support.stack import Api


def test_finished_job_is_posted_signed_to_the_webhook(
    target: Target, webhook_caller: Api, hooks: Hooks
) -> None:
    secret_response = webhook_caller.get("/api/v3/webhook/secret")
    assert secret_response.status_code == 200, secret_response.text
    secret = secret_response.json()["data"]["secret"]

    submitted = webhook_caller.submit(BODY, webhook=hooks.url)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["data"]["id"]
    delivery = hooks.receiver.wait_for_job(job_id, timeout=JOB_TIMEOUT)

    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert (payload["id"], payload["status"]) == (job_id, "completed")
    (url,) = payload["outputs"]
    assert_output_image(url, target.bucket, job_id)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(delivery.body.replace(b"completed", b"failed"), delivery.headers)
