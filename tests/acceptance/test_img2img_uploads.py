"""img2img from a photo the app uploads: WaveSpeed's upload API then a submit with `image`, and
img2img by upload (one call, one PUT; the PUT itself starts the job)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.acceptance.checks import BODY, JOB_TIMEOUT, assert_output_image, photo
from tests.acceptance.target import Target
from tests.support.stack import Api

IMG2IMG = {**BODY, "prompt": "the same scene as a woodcut", "strength": 0.6}


def put(upload: dict[str, Any], data: bytes) -> httpx.Response:
    """PUT like a client: to the presigned URL, with exactly the given headers, no Authorization."""
    assert upload["method"] == "PUT"
    return httpx.put(upload["url"], content=data, headers=upload["headers"], timeout=60)


def test_upload_then_submit_with_the_download_url(target: Target, alice: Api) -> None:
    source = photo()
    ticket = alice.post(
        "/api/v3/media/uploads",
        json={"filename": "photo.jpg", "size": len(source), "content_type": "image/jpeg"},
    )
    assert ticket.status_code == 200, ticket.text
    upload = ticket.json()["data"]
    assert put(upload["upload"], source).status_code == 200
    assert httpx.get(upload["download_url"], timeout=60).content == source

    submitted = alice.submit({**IMG2IMG, "image": upload["download_url"]})

    assert submitted.status_code == 200, submitted.text
    data = alice.wait_finished(submitted.json()["data"]["id"], timeout=JOB_TIMEOUT)
    assert data["status"] == "completed", data
    (url,) = data["outputs"]
    assert_output_image(url, target.bucket, data["id"])


def test_img2img_by_upload_starts_when_the_photo_arrives(target: Target, alice: Api) -> None:
    source = photo()
    ticket = alice.post("/api/v3/img2img/uploads", json={**IMG2IMG, "content_type": "image/jpeg"})
    assert ticket.status_code == 200, ticket.text
    job = ticket.json()["data"]
    assert job["status"] == "created"
    # Nothing runs before the file arrives.
    assert alice.result(job["id"]).json()["data"]["status"] == "created"

    assert put(job["upload"], source).status_code == 200

    data = alice.wait_finished(job["id"], timeout=JOB_TIMEOUT)
    assert data["status"] == "completed", data
    (url,) = data["outputs"]
    assert_output_image(url, target.bucket, job["id"])
