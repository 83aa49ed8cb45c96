"""Image URLs under the development URL policy (the local stack's own http upload URLs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from fluxrelay.models.wire import GenerationRequest
from fluxrelay.settings import get_settings


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4566/b/k?X-Amz-Signature=1", "http://localhost:4566/k", "http://[::1]/k"]
)
def test_development_policy_accepts_http_on_loopback(policy: pytest.MonkeyPatch, url: str) -> None:
    policy.setenv("FLUXRELAY_URL_POLICY", "development")
    assert GenerationRequest.model_validate({"prompt": "x", "image": url}).image == url


@pytest.mark.parametrize(
    "url", ["http://example.com/a.png", "http://10.0.0.1/a.png", "http://127.0.0.1.evil.com/a"]
)
def test_development_policy_still_refuses_other_http(policy: pytest.MonkeyPatch, url: str) -> None:
    policy.setenv("FLUXRELAY_URL_POLICY", "development")
    with pytest.raises(ValidationError, match="https"):
        GenerationRequest.model_validate({"prompt": "x", "image": url})


def test_strict_policy_refuses_http_on_loopback(policy: pytest.MonkeyPatch) -> None:
    policy.setenv("FLUXRELAY_URL_POLICY", "strict")
    with pytest.raises(ValidationError, match="https"):
        GenerationRequest.model_validate({"prompt": "x", "image": "http://127.0.0.1:4566/k"})
