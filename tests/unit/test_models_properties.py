"""Properties of the wire models that example tables cannot cover."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fluxrelay.models.wire import GenerationRequest, Lora, describe_validation_error

FIELDS = set(GenerationRequest.model_fields)
HF_ID = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?/[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
)


def accepts(data: Any, model: type = GenerationRequest) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


@given(width=st.integers(256, 1536), height=st.integers(256, 1536))
def test_any_size_in_range_round_trips_width_and_height(width: int, height: int) -> None:
    request = GenerationRequest.model_validate({"prompt": "p", "size": f"{width}*{height}"})
    assert (request.width, request.height) == (width, height)
    assert request.upstream_payload()["size"] == f"{width}*{height}"


@given(width=st.integers(-(10**6), 10**6), height=st.integers(-(10**6), 10**6))
def test_size_is_valid_exactly_when_both_sides_are_in_range(width: int, height: int) -> None:
    expected = 256 <= width <= 1536 and 256 <= height <= 1536
    assert accepts({"prompt": "p", "size": f"{width}*{height}"}) is expected


@given(
    key=st.text(min_size=1, max_size=30).filter(lambda key: key not in FIELDS),
    value=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
)
def test_any_body_with_an_extra_key_is_rejected_and_the_key_is_named(key: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        GenerationRequest.model_validate({"prompt": "p", key: value})
    assert describe_validation_error(caught.value).startswith("unknown field '")


@given(key=st.text(min_size=1, max_size=30).filter(lambda key: key not in {"path", "scale"}))
def test_any_lora_with_an_extra_key_is_rejected(key: str) -> None:
    assert not accepts({"path": "a/b", "scale": 1, key: 1}, Lora)


def is_hf_id(path: str) -> bool:
    return HF_ID.fullmatch(path) is not None and ".." not in path


def is_https_safetensors(path: str) -> bool:
    if not path.lower().startswith("https://") or any(char.isspace() for char in path):
        return False
    parts = urlsplit(path)
    return bool(parts.hostname) and "@" not in parts.netloc and parts.path.endswith(".safetensors")


LORA_ALPHABET = st.sampled_from([*"ab09._-/:@% \n\\", "https://", ".safetensors", "..", "é"])


@settings(max_examples=500, deadline=None)
@given(path=st.one_of(st.text(max_size=40), st.lists(LORA_ALPHABET, max_size=12).map("".join)))
def test_random_lora_paths_validate_only_as_hf_ids_or_https_safetensors(path: str) -> None:
    if accepts({"path": path, "scale": 1.0}, Lora):
        assert is_hf_id(path) or is_https_safetensors(path), path


@given(path=st.from_regex(HF_ID, fullmatch=True).filter(lambda path: ".." not in path))
def test_every_hf_id_shaped_path_validates(path: str) -> None:
    assert accepts({"path": path, "scale": 1.0}, Lora)


@given(value=st.integers(-1000, 1000))
def test_num_images_accepts_exactly_the_ints_1_to_4(value: int) -> None:
    assert accepts({"prompt": "p", "num_images": value}) is (1 <= value <= 4)
    assert accepts({"prompt": "p", "num_images": str(value)}) is (1 <= value <= 4)


@given(
    value=st.one_of(
        st.booleans(),
        st.floats().filter(lambda number: not number.is_integer()),
        st.text().filter(lambda text: not re.fullmatch(r"-?[0-9]+", text)),
        st.none(),
        st.lists(st.integers(1, 4), max_size=2),
    )
)
def test_num_images_rejects_everything_that_is_not_a_whole_number(value: Any) -> None:
    assert not accepts({"prompt": "p", "num_images": value})


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children)
    ),
    max_leaves=8,
)


@given(fields=st.dictionaries(st.sampled_from(sorted(FIELDS)), JSON_VALUES))
def test_every_rejection_of_a_known_field_is_one_of_our_worded_rules(fields: dict[str, Any]) -> None:
    try:
        GenerationRequest.model_validate(fields)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        # pydantic's own texts ("Input should ...") would mean a field has no worded rule.
        assert "Input should" not in message, message
        assert "pydantic" not in message, message
