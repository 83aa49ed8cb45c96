"""WaveSpeed's official Python SDK, unchanged, with only `base_url` and the key swapped."""

from __future__ import annotations

import re

from wavespeed import Client

from tests.acceptance.checks import BODY, JOB_TIMEOUT, assert_output_image
from tests.acceptance.target import Target
from tests.support.stack import Api

MODEL_ID = "wavespeed-ai/flux-schnell-lora"


def test_the_official_sdk_runs_a_job_through_the_stack(target: Target, alice: Api) -> None:
    client = Client(api_key=alice.key, base_url=target.api_url, max_retries=0)

    result = client.run(MODEL_ID, BODY, timeout=JOB_TIMEOUT, poll_interval=alice.poll_interval)

    # `run` gives only the outputs; the job's id is in our copy's key, outputs/<id>/0.png.
    (url,) = result["outputs"]
    found = re.search(r"/outputs/([^/]+)/", url)
    assert found, url
    assert_output_image(url, target.bucket, found[1])
    assert alice.result(found[1]).json()["data"]["status"] == "completed"
