"""WaveSpeed's official Python SDK, unchanged, against our API and against the stand-in.

The promise: an app that uses a WaveSpeed client switches to fluxrelay by changing the base
URL and the key. Only `base_url` and `api_key` differ between the two runs below.
"""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from wavespeed import Client

from fluxrelay.models.wire import MODEL_ID
from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, standin_of

pytestmark = pytest.mark.e2e

BODY = {"prompt": "a lighthouse at dusk, watercolor", "size": "512*384", "output_format": "png"}


def assert_png_outputs(outputs: list[str]) -> None:
    assert len(outputs) == 1
    image = Image.open(io.BytesIO(httpx.get(outputs[0]).content))
    assert (image.format, image.size) == ("PNG", (512, 384))


def test_the_official_sdk_runs_a_job_through_fluxrelay(stack: LocalStack, alice: Api) -> None:
    client = Client(api_key=alice.key, base_url=stack.api_url, max_retries=0)

    result = client.run(MODEL_ID, BODY, timeout=60, poll_interval=0.2)

    assert_png_outputs(result["outputs"])
    # The URLs are our S3 copies, not the upstream's.
    assert result["outputs"][0].startswith(stack.aws_endpoint_url)


def test_the_official_sdk_sync_mode_through_fluxrelay(stack: LocalStack, alice: Api) -> None:
    client = Client(api_key=alice.key, base_url=stack.api_url, max_retries=0)

    result = client.run(MODEL_ID, BODY, timeout=60, enable_sync_mode=True)

    assert_png_outputs(result["outputs"])


def test_the_official_sdk_runs_against_the_standin(stack: LocalStack) -> None:
    standin = standin_of(stack)
    client = Client(api_key=standin.api_key, base_url=stack.upstream_url, max_retries=0)

    result = client.run(MODEL_ID, BODY, timeout=60, poll_interval=0.2)

    assert_png_outputs(result["outputs"])


def test_the_official_sdk_reports_a_bad_key_from_fluxrelay(stack: LocalStack) -> None:
    client = Client(api_key="fr_wrong", base_url=stack.api_url, max_retries=0, max_connection_retries=0)

    with pytest.raises(RuntimeError, match="401"):
        client.run(MODEL_ID, BODY, timeout=10)
