"""The shortest real path: submit over HTTP, the workflow runs, the result is downloadable."""

from __future__ import annotations

import io
import json

import httpx
from PIL import Image

from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api


def test_txt2img_job_completes_with_a_downloadable_image(stack: LocalStack, alice: Api) -> None:
    response = alice.submit({"prompt": "a lighthouse at dusk", "size": "512*384", "output_format": "png"})
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["id"]
    data = alice.wait_finished(job_id)
    assert data["status"] == "completed", data
    image = Image.open(io.BytesIO(httpx.get(data["outputs"][0]).content))
    assert (image.format, image.size) == ("PNG", (512, 384))


def test_every_value_in_stack_json_is_usable(stack: LocalStack) -> None:
    text = stack.state_file.read_text(encoding="utf-8")
    assert "${" not in text
    info = json.loads(text)
    assert info["outputs"]["ApiUrl"] == info["api_url"] == stack.api_url
    assert httpx.get(f"{info['outputs']['ApiUrl']}/health").json()["data"] == {"status": "ok"}
