"""Generation end to end, over real HTTP: the local stack (real template on moto, in-process
Lambdas, executing Step Functions), the WaveSpeed stand-in upstream and a real webhook receiver.

Each test tags its prompt with a unique marker to find its own traffic at the stand-in. Jobs
that would never finish upstream (`[hang]`) are ended by moving their deadline into the past, so
no test leaves a workflow polling in the background (it would eat the next test's faults).
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fluxrelay_local.stack import LocalStack
from tests.support.stack import (
    Api,
    WebhookReceiver,
    end_hanging_job,
    job_item,
    settings_env,
    sns_events_for,
    sns_queue,
    wait_for,
)

pytestmark = pytest.mark.e2e

SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora"
LORAS = [
    {"path": "alvdansen/frosting_lane_flux", "scale": 0.8},
    {"path": "strangerzonehf/Flux-Super-Realism-LoRA", "scale": 1.2},
]
IMAGE_URL = "https://images.example.com/source/cat.png"
MASK_URL = "https://images.example.com/source/cat-mask.png"


# --------------------------------------------------------------------------- helpers
def tag() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


def submissions(standin: Any, marker: str) -> list[dict[str, Any]]:
    return [s for s in standin.submissions if marker in s["input"]["prompt"]]


def submit_posts(standin: Any, marker: str) -> list[dict[str, Any]]:
    """Every submit POST the stand-in received for this marker, accepted or not."""
    return [
        r
        for r in standin.received
        if r["method"] == "POST"
        and r["path"] == SUBMIT_PATH
        and marker in ((r["json"] or {}).get("prompt", ""))
    ]


def result_gets(standin: Any, upstream_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in standin.received
        if r["method"] == "GET" and upstream_id in r["path"] and "/output/" not in r["path"]
    ]


def submitted_id(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["id"]
    assert isinstance(job_id, str)
    assert len(job_id) == 32
    return job_id


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == status
    assert body["message"]
    return dict(body)


def jobs_with_marker(stack: LocalStack, marker: str) -> list[dict[str, Any]]:
    """Job items whose prompt carries `marker` (for submits that answered without a job id)."""
    found = []
    for page in stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.table):
        for item in page["Items"]:
            if item["pk"]["S"].startswith("JOB#") and marker in str(item.get("request", {})):
                found.append(job_item(stack, item["pk"]["S"].removeprefix("JOB#")))
    return found


def verified(delivery: Any, secret: str) -> dict[str, Any]:
    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert isinstance(payload, dict)
    return payload


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()  # a truncated or corrupt file fails here, not only its header
    return image


# --------------------------------------------------------------------------- happy path
def test_txt2img_with_two_loras_is_stored_notified_signed_and_downloadable(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    # Given a webhook receiver, an SNS subscription and alice's signing secret
    marker = tag()
    secret = assert_envelope(alice.get("/api/v3/webhook/secret"), 200)["data"]["secret"]
    assert secret.startswith("whsec_")
    body = {
        "prompt": f"a lighthouse at dusk {marker}",
        "loras": LORAS,
        "num_images": 2,
        "size": "512*384",
        "output_format": "png",
        "seed": 42,
    }
    with WebhookReceiver() as hook, sns_queue(stack) as drain:
        # When alice submits
        job_id = submitted_id(alice.submit(body, webhook=hook.url))

        # Then the webhook arrives, signed per Standard Webhooks with alice's secret
        (delivery,) = hook.wait(1)
        payload = verified(delivery, secret)
        assert payload["id"] == job_id
        assert payload["status"] == "completed"
        assert len(payload["outputs"]) == 2
        assert all(url.startswith("http") for url in payload["outputs"])
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(delivery.body + b" ", delivery.headers)

        # and one SNS job event with the attributes filter policies use
        (event,) = wait_for(lambda: sns_events_for(drain, job_id), what="the SNS job event")
    assert event["status"] == "completed"
    assert event["attributes"] == {"status": "completed", "owner": "alice", "source": "api"}
    assert event["outputs"] == [f"outputs/{job_id}/0.png", f"outputs/{job_id}/1.png"]

    # and the result's outputs download as real images of the requested size and format
    data = alice.wait_finished(job_id)
    assert data["status"] == "completed", data
    assert data["error"] == ""
    assert len(data["outputs"]) == 2
    for url in data["outputs"]:
        image = open_image(httpx.get(url).raise_for_status().content)
        assert (image.format, image.size) == ("PNG", (512, 384))

    # and the objects are in our bucket under outputs/<id>/ with the right content type
    s3 = stack.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"outputs/{job_id}/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    assert keys == [f"outputs/{job_id}/0.png", f"outputs/{job_id}/1.png"]
    for key in keys:
        assert s3.head_object(Bucket=stack.bucket, Key=key)["ContentType"] == "image/png"

    # and the job item is completed
    item = job_item(stack, job_id)
    assert item is not None
    assert item["status"] == "completed"
    assert item["owner"] == "alice"
    assert [o["key"] for o in item["outputs"]] == keys
    assert item["webhook"]["state"] == "delivered"

    # and the upstream saw exactly one submit, with both LoRAs passed through
    (submission,) = submissions(standin, marker)
    assert submission["input"]["loras"] == LORAS
    assert submission["input"]["num_images"] == 2
    assert submission["dropped_keys"] == []
    assert len(submit_posts(standin, marker)) == 1


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"image": IMAGE_URL, "strength": 0.35}, {"image": IMAGE_URL, "strength": 0.35}, id="img2img"
        ),
        pytest.param(
            {"image": IMAGE_URL, "mask_image": MASK_URL, "strength": 0.9},
            {"image": IMAGE_URL, "mask_image": MASK_URL, "strength": 0.9},
            id="inpainting",
        ),
    ],
)
def test_img2img_and_inpainting_fields_are_passed_to_the_upstream(
    alice: Api, standin: Any, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    marker = tag()
    job_id = submitted_id(alice.submit({"prompt": f"as a watercolour {marker}", "size": "512*512", **extra}))

    assert alice.wait_finished(job_id)["status"] == "completed"
    (submission,) = submissions(standin, marker)
    for name, value in expected.items():
        assert submission["body"][name] == value, name
        assert submission["input"][name] == value, name
    if "mask_image" not in expected:
        assert not submission["body"].get("mask_image")


def test_base64_output_is_served_as_images_but_the_webhook_carries_urls(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    marker = tag()
    body = {
        "prompt": f"a red fox {marker}",
        "size": "384*256",
        "output_format": "webp",
        "enable_base64_output": True,
    }
    with WebhookReceiver() as hook:
        job_id = submitted_id(alice.submit(body, webhook=hook.url))
        (delivery,) = hook.wait(1)

    data = alice.wait_finished(job_id)
    assert data["status"] == "completed", data
    (output,) = data["outputs"]
    image = open_image(base64.b64decode(output, validate=True))
    assert (image.format, image.size) == ("WEBP", (384, 256))
    (webhook_url,) = delivery.json()["outputs"]
    assert webhook_url.startswith("http")
    assert open_image(httpx.get(webhook_url).raise_for_status().content).format == "WEBP"
    # We always ask the upstream for URLs (our outputs are streamed from them into S3).
    (submission,) = submissions(standin, marker)
    assert "enable_base64_output" not in submission["body"]


# --------------------------------------------------------------------------- sync mode
def test_sync_mode_answers_the_completed_prediction_when_the_job_finishes_in_time(alice: Api) -> None:
    started = time.monotonic()
    response = alice.submit({"prompt": "a quick sketch", "size": "256*256", "enable_sync_mode": True})
    elapsed = time.monotonic() - started

    data = assert_envelope(response, 200)["data"]
    assert data["status"] == "completed", data
    assert len(data["outputs"]) == 1
    assert "code" not in data
    assert elapsed < 25
    assert open_image(httpx.get(data["outputs"][0]).content).size == (256, 256)


def test_sync_mode_answers_the_processing_shape_when_the_job_outlasts_the_wait(
    stack: LocalStack, alice: Api
) -> None:
    with settings_env(SYNC_WAIT_SECONDS="1"):
        started = time.monotonic()
        response = alice.submit({"prompt": "never done [hang]", "size": "256*256", "enable_sync_mode": True})
        elapsed = time.monotonic() - started

    data = assert_envelope(response, 200)["data"]
    try:
        assert data["status"] == "processing"
        assert data["code"] == 5004
        assert data["outputs"] == []
        assert data["urls"]["get"].endswith(f"/api/v3/predictions/{data['id']}/result")
        assert 1 <= elapsed < 10  # waited, then answered: never the gateway's timeout
        # The job goes on after the answer.
        assert alice.result(data["id"]).json()["data"]["status"] in ("created", "processing")
    finally:
        assert end_hanging_job(stack, alice, data["id"])["status"] == "timeout"


# --------------------------------------------------------------------------- upstream failures
def test_failed_upstream_task_marks_the_job_failed_and_notifies(stack: LocalStack, alice: Api) -> None:
    with WebhookReceiver() as hook, sns_queue(stack) as drain:
        job_id = submitted_id(alice.submit({"prompt": "cursed [fail]", "size": "256*256"}, webhook=hook.url))
        (delivery,) = hook.wait(1)
        (event,) = wait_for(lambda: sns_events_for(drain, job_id), what="the SNS job event")

    data = alice.wait_finished(job_id)
    assert data["status"] == "failed"
    assert "injected fault" in data["error"]
    assert data["outputs"] == []
    assert delivery.json()["status"] == "failed"
    assert delivery.json()["error"] == data["error"]
    assert event["status"] == "failed"
    assert event["attributes"]["status"] == "failed"
    assert event["error"]["message"] == data["error"]
    assert job_item(stack, job_id)["status"] == "failed"  # type: ignore[index]


@pytest.mark.parametrize("status", [502, 429])
def test_upstream_errors_while_polling_do_not_fail_the_job(
    stack: LocalStack, alice: Api, standin: Any, status: int
) -> None:
    # More failed GETs in a row than the client retries: the workflow itself must poll again.
    standin.faults.result_5xx_status = status
    standin.faults.result_5xx = 7
    with settings_env(UPSTREAM_BACKOFF_BASE="0.01"):
        job_id = submitted_id(alice.submit({"prompt": f"stormy sea {tag()}", "size": "256*256"}))
        data = alice.wait_finished(job_id)

    assert data["status"] == "completed", data
    assert standin.faults.result_5xx == 0  # every injected error was met
    upstream_id = job_item(stack, job_id)["upstream_id"]  # type: ignore[index]
    assert len(result_gets(standin, upstream_id)) >= 8


def test_outputs_expired_upstream_fail_the_job_with_a_clear_error(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    standin.faults.outputs_expired = True
    with sns_queue(stack) as drain:
        job_id = submitted_id(alice.submit({"prompt": f"old news {tag()}", "size": "256*256"}))
        data = alice.wait_finished(job_id)
        (event,) = wait_for(lambda: sns_events_for(drain, job_id), what="the SNS job event")

    assert data["status"] == "failed"
    assert "upstream output is not found (HTTP 404)" in data["error"]
    assert "deletes outputs" in data["error"]
    assert event["status"] == "failed"
    listed = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=f"outputs/{job_id}/")
    assert listed.get("KeyCount", 0) == 0


def test_job_past_its_deadline_times_out_and_is_notified(stack: LocalStack, alice: Api) -> None:
    with WebhookReceiver() as hook, sns_queue(stack) as drain:
        job_id = submitted_id(alice.submit({"prompt": "forever [hang]", "size": "256*256"}, webhook=hook.url))
        assert alice.result(job_id).json()["data"]["status"] in ("created", "processing")

        data = end_hanging_job(stack, alice, job_id)
        (delivery,) = hook.wait(1)
        (event,) = wait_for(lambda: sns_events_for(drain, job_id), what="the SNS job event")

    assert data["status"] == "timeout"
    assert "did not finish within" in data["error"]
    assert delivery.json()["status"] == "timeout"
    assert event["status"] == "timeout"
    assert event["attributes"]["status"] == "timeout"


# --------------------------------------------------------------------------- webhooks
def test_webhook_answered_500_is_redelivered_until_it_succeeds_once(stack: LocalStack, alice: Api) -> None:
    secret = alice.get("/api/v3/webhook/secret").json()["data"]["secret"]
    with WebhookReceiver(statuses=[500, 500]) as hook:
        job_id = submitted_id(alice.submit({"prompt": "retry me", "size": "256*256"}, webhook=hook.url))
        (delivery,) = hook.wait(1)
        execution = stack.wait_for_execution(job_item(stack, job_id)["execution_arn"])  # type: ignore[index]

        assert execution["status"] == "SUCCEEDED"
        assert hook.attempts == 3
        assert len(hook.deliveries) == 1
    assert verified(delivery, secret)["id"] == job_id
    webhook = job_item(stack, job_id)["webhook"]  # type: ignore[index]
    assert webhook["state"] == "delivered"
    assert webhook["attempts"] == 3
    assert webhook["last_status"] == 200
    log = alice.get(f"/api/v3/predictions/{job_id}/webhooks").json()["data"]
    attempts = list(reversed(log["items"]))
    assert [(a["status_code"], a["outcome"]) for a in attempts] == [
        (500, "will_retry"),
        (500, "will_retry"),
        (200, "delivered"),
    ]
    assert all(a["next_retry_at"] > a["at"] for a in attempts[:2])
    assert attempts[2]["next_retry_at"] is None


# --------------------------------------------------------------------------- NSFW policy
def detail(image: Image.Image) -> float:
    """Mean difference between neighbouring pixels: high for edges and text, ~0 when smooth."""
    grey = image.convert("L")
    shifted = grey.transform(grey.size, Image.Transform.AFFINE, (1, 0, 1, 0, 1, 0))
    diff = ImageChops.difference(grey, shifted).crop((0, 0, grey.width - 1, grey.height))
    return float(ImageStat.Stat(diff).mean[0])


def test_blur_policy_serves_only_a_blurred_copy_of_a_flagged_output(alice: Api) -> None:
    body = {"prompt": "a beach [nsfw]", "size": "256*256", "seed": 7}
    with settings_env(NSFW_POLICY="flag"):
        flagged = alice.wait_finished(submitted_id(alice.submit(body)))
    with settings_env(NSFW_POLICY="blur"):
        blurred = alice.wait_finished(submitted_id(alice.submit(body)))

    assert flagged["has_nsfw_contents"] == blurred["has_nsfw_contents"] == [True]
    original = open_image(httpx.get(flagged["outputs"][0]).content)
    served = open_image(httpx.get(blurred["outputs"][0]).content)
    assert served.size == original.size == (256, 256)
    assert detail(original) > 4 * detail(served), (detail(original), detail(served))


def test_withhold_policy_serves_no_flagged_output_and_says_why(alice: Api) -> None:
    with settings_env(NSFW_POLICY="withhold"), WebhookReceiver() as hook:
        job_id = submitted_id(alice.submit({"prompt": "a beach [nsfw]", "size": "256*256"}, webhook=hook.url))
        data = alice.wait_finished(job_id)
        (delivery,) = hook.wait(1)

    assert (data["status"], data["outputs"], data["has_nsfw_contents"]) == ("completed", [], [])
    assert data["withheld"]["count"] == 1
    assert "flagged as NSFW" in data["withheld"]["reason"]
    assert delivery.json()["withheld"] == data["withheld"]


# --------------------------------------------------------------------------- access
# (another owner's job → 404: tests/e2e/test_safety.py)
@pytest.mark.parametrize(("key", "words"), [(None, "missing"), ("fr_not-a-real-key", "invalid")])
def test_missing_or_bad_key_is_a_401_envelope(
    stack: LocalStack, alice: Api, key: str | None, words: str
) -> None:
    job_id = submitted_id(alice.submit({"prompt": "mine", "size": "256*256"}))
    caller = Api(stack.api_url, key)

    for response in (
        caller.result(job_id),
        caller.submit({"prompt": "x"}),
        caller.get("/api/v3/webhook/secret"),
    ):
        body = assert_envelope(response, 401)
        assert body["data"] is None
        assert words in body["message"].lower()


# --------------------------------------------------------------------------- submit failures
def test_upstream_rejecting_the_submit_is_a_4xx_with_its_reason_and_a_failed_job(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    marker = tag()
    reason = "lora not found: alvdansen/frosting_lane_flux"
    standin.set_faults(submit_reject_marker=marker, submit_reject_status=422, submit_reject_message=reason)

    response = alice.submit({"prompt": f"rejected {marker}", "loras": LORAS[:1]})

    body = assert_envelope(response, 422)
    assert reason in body["message"]
    (job,) = jobs_with_marker(stack, marker)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "upstream_rejected"
    assert job.get("upstream_id") is None
    assert len(submit_posts(standin, marker)) == 1


def test_upstream_rate_limiting_the_submit_is_a_429_with_retry_after(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    # Retry-After beyond the client's retry budget: it gives up at once and says when to retry.
    standin.faults.submit_429 = 10
    standin.faults.submit_429_retry_after = 30
    marker = tag()

    response = alice.submit({"prompt": f"busy {marker}", "size": "256*256"})

    body = assert_envelope(response, 429)
    assert "rate limit" in body["message"].lower()
    assert int(response.headers["Retry-After"]) == 30
    assert submissions(standin, marker) == []
    (job,) = jobs_with_marker(stack, marker)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "upstream_rate_limited"


@pytest.mark.parametrize("fault", ["submit_5xx_after_create", "submit_hang"])
def test_an_ambiguous_submit_that_created_the_task_adopts_it_from_its_webhook(
    stack: LocalStack, alice: Api, standin: Any, fault: str
) -> None:
    marker = tag()
    setattr(standin.faults, fault, 1)
    standin.faults.submit_hang_seconds = 3.0
    with settings_env(UPSTREAM_SUBMIT_READ_TIMEOUT="0.5"):
        response = alice.submit({"prompt": f"did it go {marker}", "size": "256*256"})
        data = assert_envelope(response, 200)["data"]
        assert data["status"] == "created"
        done = alice.wait_finished(data["id"])

    assert done["status"] == "completed"
    assert len(submit_posts(standin, marker)) == 1  # never resent: one task, one charge
    (task,) = submissions(standin, marker)
    assert (job_item(stack, data["id"]) or {})["upstream_id"] == task["id"]


def test_an_ambiguous_submit_that_created_nothing_fails_after_the_adoption_window(
    stack: LocalStack, alice: Api, standin: Any
) -> None:
    marker = tag()
    standin.faults.submit_5xx = 1  # answers 500 without creating a task
    with settings_env(AMBIGUOUS_SUBMIT_WINDOW_SECONDS="1"):
        response = alice.submit({"prompt": f"did it go {marker}", "size": "256*256"})
        data = assert_envelope(response, 200)["data"]
        assert data["status"] == "created"
        done = alice.wait_finished(data["id"])

    assert done["status"] == "failed"
    assert "not resent" in done["error"]
    assert len(submit_posts(standin, marker)) == 1
    assert submissions(standin, marker) == []
    assert (job_item(stack, data["id"]) or {})["error"]["type"] == "ambiguous_submit"
