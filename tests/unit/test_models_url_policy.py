"""Image URLs under each URL policy, which reaches the models through the validation context
(the local stack's own upload URLs are plain http on loopback)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fluxrelay.models.wire import GenerationRequest
from fluxrelay.settings import Settings

DEVELOPMENT = Settings(FLUXRELAY_URL_POLICY="development").validation_context()
STRICT = Settings(FLUXRELAY_URL_POLICY="strict").validation_context()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4566/b/k?X-Amz-Signature=1", "http://localhost:4566/k", "http://[::1]/k"]
)
def test_development_policy_accepts_http_on_loopback(url: str) -> None:
    assert GenerationRequest.model_validate({"prompt": "x", "image": url}, context=DEVELOPMENT).image == url


@pytest.mark.parametrize(
    "url", ["http://example.com/a.png", "http://10.0.0.1/a.png", "http://127.0.0.1.evil.com/a"]
)
def test_development_policy_still_refuses_other_http(url: str) -> None:
    with pytest.raises(ValidationError, match="https"):
        GenerationRequest.model_validate({"prompt": "x", "image": url}, context=DEVELOPMENT)


@pytest.mark.parametrize("context", [STRICT, None, {}])
def test_strict_policy_and_no_context_refuse_http_on_loopback(context: dict[str, object] | None) -> None:
    with pytest.raises(ValidationError, match="https"):
        GenerationRequest.model_validate({"prompt": "x", "image": "http://127.0.0.1:4566/k"}, context=context)


def test_the_environment_does_not_change_what_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXRELAY_URL_POLICY", "development")
    with pytest.raises(ValidationError, match="https"):
        GenerationRequest.model_validate({"prompt": "x", "image": "http://127.0.0.1:4566/k"})


def test_an_internationalised_host_name_is_accepted_as_the_guard_accepts_it() -> None:
    url = "https://b\u00fccher.example/a.png"
    assert GenerationRequest.model_validate({"prompt": "x", "image": url}).image == url
