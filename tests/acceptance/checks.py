"""What the acceptance tests send and how they check what comes back, over plain HTTP."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from fluxrelay_local.receiver import WebhookReceiver
from tests.support.stack import Api

# One image, small, PNG: the cheapest job that still proves size and format came back right.
BODY: dict[str, Any] = {
    "prompt": "a lighthouse at dusk, watercolor",
    "size": "512*384",
    "output_format": "png",
}
SIZE = (512, 384)
# Generous for a real upstream and a cold deployment; the local stack takes a few seconds.
JOB_TIMEOUT = 180.0


def assert_output_image(
    url: str, bucket: str, job_id: str, fmt: str = "PNG", size: tuple[int, int] = SIZE
) -> None:
    """The output is our copy in the stack's bucket (not the upstream's URL) and a whole image of
    the requested format and size."""
    assert bucket in url, url
    assert f"outputs/{job_id}/" in url, url
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, response.text[:200]
    image = Image.open(io.BytesIO(response.content))
    image.load()  # a truncated file fails here, not only its header
    assert (image.format, image.size) == (fmt, size)


def photo(size: tuple[int, int] = (512, 384)) -> bytes:
    """A small JPEG to upload as an img2img source: a gradient, so it is a plausible photo."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


@dataclass
class Caller(Api):
    """An API caller and the owner its key belongs to."""

    owner: str = ""


@dataclass(frozen=True)
class FinishedJob:
    id: str
    body: dict[str, Any]
    idempotency_key: str
    data: dict[str, Any]  # the final prediction


@dataclass(frozen=True)
class Hooks:
    """A running webhook receiver and the URL the stack should post to."""

    receiver: WebhookReceiver
    url: str
