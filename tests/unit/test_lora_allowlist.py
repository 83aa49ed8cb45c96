"""The operator's LoRA allowlist, applied where the API reads a body (validation context)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluxrelay import composition
from fluxrelay.api.app import create_app
from fluxrelay.settings import get_settings
from tests.support.functions import Ctx

ROOT = Path(__file__).resolve().parents[2]
SUBMIT_EVENT = json.loads((ROOT / "events" / "api_submit.json").read_text(encoding="utf-8"))


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The allowlist is set; records each time a route got past validation to its services."""
    monkeypatch.setenv("LORA_ALLOWLIST", "alvdansen/frosting_lane_flux,acme-studio/")
    get_settings.cache_clear()
    calls: list[str] = []

    def no_services() -> Any:
        calls.append("services")
        raise LookupError("no services in this test")

    monkeypatch.setattr(composition, "container", no_services)
    yield calls
    get_settings.cache_clear()


def submit(*paths: str) -> tuple[int, str]:
    event = copy.deepcopy(SUBMIT_EVENT)
    event["body"] = json.dumps({"prompt": "x", "loras": [{"path": p, "scale": 1} for p in paths]})
    event["isBase64Encoded"] = False
    out = create_app().resolve(event, Ctx())
    return out["statusCode"], json.loads(out["body"])["message"]


def test_a_lora_outside_the_allowlist_is_a_400_naming_the_field(reached: list[str]) -> None:
    status, message = submit("acme-studio/portraits", "someone/else")
    assert (status, message) == (400, "loras[1].path is not one of the LoRAs this server allows")
    assert reached == []


@pytest.mark.parametrize("path", ["alvdansen/frosting_lane_flux", "acme-studio/portraits"])
def test_allowed_loras_pass_validation(reached: list[str], path: str) -> None:
    submit(path)
    assert reached == ["services"]
