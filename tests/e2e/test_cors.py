"""CORS for browser clients, set by the template parameter `CorsAllowedOrigins`: preflights of an
allowed origin are answered with the methods and headers the API takes, its answers carry the
CORS headers, and any other origin gets none. (Without the parameter there is no CORS at all:
test_safety checks that on the default stack.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api

pytestmark = pytest.mark.e2e

APP = "https://app.example.com"
OTHER = "https://admin.example.com"


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {"parameters": {"CorsAllowedOrigins": f"{APP},{OTHER}"}}


def preflight(stack: LocalStack, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        f"{stack.api_url}/api/v3/wavespeed-ai/flux-schnell-lora",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, cancel-after",
        },
    )


@pytest.mark.parametrize("origin", [APP, OTHER])
def test_a_preflight_from_an_allowed_origin_is_answered(stack: LocalStack, origin: str) -> None:
    answer = preflight(stack, origin)

    assert answer.status_code == 204, answer.text
    assert answer.headers["access-control-allow-origin"] == origin
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "cancel-after"} <= allowed


def test_answers_to_an_allowed_origin_carry_the_cors_headers(alice: Api) -> None:
    answer = alice.get("/api/v3/predictions", headers={"Origin": APP})
    refused = alice.get("/api/v3/predictions/" + "0" * 32, headers={"Origin": APP})

    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == APP
    assert "Retry-After" in answer.headers["access-control-expose-headers"]
    # Errors too: a browser app must be able to read the envelope's message.
    assert refused.status_code == 404
    assert refused.headers["access-control-allow-origin"] == APP


def test_another_origin_gets_no_cors_headers(stack: LocalStack, alice: Api) -> None:
    stranger = "https://evil.example.net"

    assert "access-control-allow-origin" not in preflight(stack, stranger).headers
    assert (
        "access-control-allow-origin"
        not in alice.get("/api/v3/predictions", headers={"Origin": stranger}).headers
    )
