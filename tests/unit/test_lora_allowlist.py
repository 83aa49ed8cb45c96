"""The operator's LoRA allowlist, applied after route validation (which has no context)."""

from __future__ import annotations

import pytest

from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.models.wire import GenerationRequest, enforce_lora_allowlist

ALLOW = ["alvdansen/frosting_lane_flux", "acme-studio/"]


def request(*paths: str) -> GenerationRequest:
    return GenerationRequest.model_validate(
        {"prompt": "x", "loras": [{"path": p, "scale": 1} for p in paths]}
    )


@pytest.mark.parametrize("paths", [(), ("alvdansen/frosting_lane_flux",), ("acme-studio/portraits",)])
def test_allowed_loras_pass(paths: tuple[str, ...]) -> None:
    assert enforce_lora_allowlist(request(*paths), ALLOW).loras == request(*paths).loras


def test_a_lora_outside_the_allowlist_is_a_400_naming_the_field() -> None:
    with pytest.raises(
        InvalidRequestError, match=r"loras\[1\]\.path is not one of the LoRAs this server allows"
    ):
        enforce_lora_allowlist(request("acme-studio/portraits", "someone/else"), ALLOW)


def test_an_empty_allowlist_allows_any_lora() -> None:
    assert enforce_lora_allowlist(request("someone/else"), []).loras[0].path == "someone/else"
