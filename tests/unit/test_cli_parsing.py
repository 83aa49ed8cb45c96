"""What the `fluxrelay` command makes of its arguments and where it finds its stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluxrelay_cli.generate import parse_lora
from fluxrelay_cli.target import CliError, api_target


@pytest.mark.parametrize(
    ("given", "lora"),
    [
        ("alvdansen/frosting_lane_flux:0.8", {"path": "alvdansen/frosting_lane_flux", "scale": 0.8}),
        ("alvdansen/frosting_lane_flux", {"path": "alvdansen/frosting_lane_flux", "scale": 1.0}),
        ("https://h.example/x.safetensors", {"path": "https://h.example/x.safetensors", "scale": 1.0}),
        ("https://h.example/x.safetensors:2", {"path": "https://h.example/x.safetensors", "scale": 2.0}),
        # Not a number after the colon: the whole text is the path, and the API judges it.
        ("owner/repo:v2", {"path": "owner/repo:v2", "scale": 1.0}),
    ],
)
def test_lora_option_is_a_path_and_an_optional_scale(given: str, lora: dict[str, object]) -> None:
    assert parse_lora(given) == lora


def test_empty_lora_is_refused() -> None:
    with pytest.raises(CliError, match="--lora must be owner/repo"):
        parse_lora("")


def write_stack(folder: Path) -> Path:
    (folder / ".local").mkdir(parents=True)
    path = folder / ".local" / "stack.json"
    path.write_text(json.dumps({"api_url": "http://127.0.0.1:3000/", "api_key": "fr_dev"}))
    return path


def test_the_local_stack_is_found_from_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stack(tmp_path)
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "sub" / "deeper")
    target = api_target(None, None, None)
    assert (target.url, target.key, target.local) == ("http://127.0.0.1:3000", "fr_dev", True)


def test_a_key_alone_is_used_with_the_local_stack(tmp_path: Path) -> None:
    target = api_target(None, "fr_other", write_stack(tmp_path))
    assert (target.url, target.key) == ("http://127.0.0.1:3000", "fr_other")


def test_an_api_url_wins_over_the_local_stack_and_needs_a_key(tmp_path: Path) -> None:
    stack_file = write_stack(tmp_path)
    target = api_target("https://api.example.com/", "fr_remote", stack_file)
    assert (target.url, target.key, target.local) == ("https://api.example.com", "fr_remote", False)
    with pytest.raises(CliError, match="FLUXRELAY_API_KEY"):
        api_target("https://api.example.com", None, stack_file)


def test_no_stack_anywhere_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CliError, match="make run"):
        api_target(None, None, None)
