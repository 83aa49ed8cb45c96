"""Submit and result: the WaveSpeed v3 routes an app calls, in normal and sync mode, and
Idempotency-Key replays."""

from __future__ import annotations

from tests.acceptance.checks import BODY, FinishedJob, assert_output_image
from tests.acceptance.target import Target
from tests.support.stack import Api


def test_submitted_job_completes_with_its_image_in_the_stacks_bucket(
    target: Target, alice: Api, finished_job: FinishedJob
) -> None:
    data = finished_job.data
    assert data["status"] == "completed", data
    assert data["id"] == finished_job.id
    assert data["model"] == "wavespeed-ai/flux-schnell-lora"
    (url,) = data["outputs"]
    assert_output_image(url, target.bucket, finished_job.id)
    # Both result routes give the same prediction.
    again = alice.get(f"/api/v3/predictions/{finished_job.id}").json()
    assert again["code"] == 200
    assert (again["data"]["id"], again["data"]["status"]) == (finished_job.id, "completed")


def test_sync_mode_answers_with_the_finished_prediction(target: Target, alice: Api) -> None:
    response = alice.submit({**BODY, "enable_sync_mode": True})

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "completed", data
    (url,) = data["outputs"]
    assert_output_image(url, target.bucket, data["id"])


def test_idempotency_key_replays_the_original_job(alice: Api, finished_job: FinishedJob) -> None:
    key = {"Idempotency-Key": finished_job.idempotency_key}

    replay = alice.submit(finished_job.body, headers=key)

    assert replay.status_code == 200, replay.text
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["data"]["id"] == finished_job.id
    assert replay.json()["data"]["status"] == "completed"  # its current state, not a new job
    # The same key with another body is a client error, not a second job.
    other = alice.submit({**finished_job.body, "prompt": "something else"}, headers=key)
    assert other.status_code == 422, other.text
