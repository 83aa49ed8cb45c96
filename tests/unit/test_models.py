"""The public wire models: every bound, every hostile input, the exact 400 messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from fluxrelay.models.uploads import (
    MAX_UPLOAD_BYTES,
    BinaryUpload,
    UploadSpec,
    UploadTicket,
    UploadTicketRequest,
)
from fluxrelay.models.wire import (
    MAX_PROMPT_LENGTH,
    Envelope,
    GenerationRequest,
    Lora,
    Prediction,
    describe_validation_error,
    error_body,
    success,
)

UNKNOWN = "(not part of the API; it would be silently ignored and billed with defaults upstream)"
PROMPT_RULE = "prompt must be a non-empty string of at most 2000 characters"
STRENGTH_RULE = "strength must be a number from 0.0 to 1.0"
SIZE_RULE = 'size must look like "1024*1024" with each side from 256 to 1536'
NUM_RULE = "num_images must be a whole number from 1 to 4"
SEED_RULE = "seed must be a whole number from -1 to 2147483647 (-1 picks a random seed)"
LORAS_RULE = "loras must be a list of at most 3 LoRAs"
PATH_RULE = 'must be a Hugging Face id like "owner/repo" or an https:// URL ending in .safetensors'
# URL rules: the SSRF guard's own (fluxrelay.adapters.urlguard.rules), minus the DNS lookup.
SCHEME = "must use https"
SPACES = "must not contain whitespace, control characters or backslashes"
CREDENTIALS = "must not contain credentials (user:password@)"
BOOL = "must be true or false (a JSON boolean, not a string or number)"


def body(**fields: Any) -> dict[str, Any]:
    return {"prompt": "a cat in a spacesuit", **fields}


def lora(path: str = "XLabs-AI/flux-RealismLora", scale: Any = 1.0) -> dict[str, Any]:
    return {"path": path, "scale": scale}


def rejection(data: Any, model: type = GenerationRequest, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, **kwargs)
    return describe_validation_error(caught.value)


# (id, body, expected field values on success) -- every bound on its valid side.
VALID = [
    ("minimal", body(), {"num_images": 1, "size": "1024*1024", "loras": []}),
    ("prompt_one_char", {"prompt": "x"}, {"prompt": "x"}),
    ("prompt_at_max", {"prompt": "p" * MAX_PROMPT_LENGTH}, {"prompt": "p" * 2000}),
    ("prompt_padded_kept_as_is", {"prompt": "  cat  "}, {"prompt": "  cat  "}),
    ("strength_0", body(strength=0), {"strength": 0.0}),
    ("strength_1", body(strength=1), {"strength": 1.0}),
    ("strength_numeric_string", body(strength="0.5"), {"strength": 0.5}),
    ("loras_0", body(loras=[]), {"loras": []}),
    ("loras_3", body(loras=[lora(), lora(), lora()]), {"num_loras": 3}),
    ("scale_0", body(loras=[lora(scale=0)]), {"scale": 0.0}),
    ("scale_4", body(loras=[lora(scale=4)]), {"scale": 4.0}),
    ("size_256_both", body(size="256*256"), {"width": 256, "height": 256}),
    ("size_1536_both", body(size="1536*1536"), {"width": 1536, "height": 1536}),
    ("size_mixed", body(size="256*1536"), {"width": 256, "height": 1536}),
    ("size_not_multiple_of_16", body(size="1000*777"), {"width": 1000, "height": 777}),
    ("num_images_1", body(num_images=1), {"num_images": 1}),
    ("num_images_4", body(num_images=4), {"num_images": 4}),
    ("num_images_string_4", body(num_images="4"), {"num_images": 4}),
    ("num_images_float_4_0", body(num_images=4.0), {"num_images": 4}),
    ("seed_minus_1", body(seed=-1), {"seed": -1}),
    ("seed_0", body(seed=0), {"seed": 0}),
    ("seed_max", body(seed=2147483647), {"seed": 2147483647}),
    ("seed_string", body(seed="42"), {"seed": 42}),
    ("png", body(output_format="png"), {"output_format": "png"}),
    ("webp", body(output_format="webp"), {"output_format": "webp"}),
    (
        "bools_flipped",
        body(enable_base64_output=True, enable_sync_mode=True, enable_safety_checker=False),
        {},
    ),
    ("image_empty_means_absent", body(image=""), {"image": None}),
    ("image_null_means_absent", body(image=None), {"image": None}),
    (
        "image_https",
        body(image="https://cdn.example.com/in.png"),
        {"image": "https://cdn.example.com/in.png"},
    ),
    ("image_with_port_query", body(image="https://h.example:8443/a.png?x=1#f"), {}),
    ("image_ipv6_literal", body(image="https://[2001:db8::1]/a.png"), {}),
    ("mask_with_image", body(image="https://h.example/a.png", mask_image="https://h.example/m.png"), {}),
    ("empty_mask_means_absent", body(mask_image=""), {"mask_image": None}),
    ("lora_hf_dots_underscores", body(loras=[lora("a_b.c/d-e.f_g")]), {}),
    ("lora_hf_single_chars", body(loras=[lora("a/b")]), {}),
    ("lora_hf_96_chars", body(loras=[lora("o" * 96 + "/" + "r" * 96)]), {}),
    ("lora_url", body(loras=[lora("https://huggingface.co/o/r/resolve/main/x.safetensors")]), {}),
    ("lora_url_with_query", body(loras=[lora("https://cdn.example.com/l/x.safetensors?download=1")]), {}),
]


@pytest.mark.parametrize(("data", "expected"), [case[1:] for case in VALID], ids=[c[0] for c in VALID])
def test_valid_submit_bodies_are_accepted_with_exact_values(data: dict, expected: dict) -> None:
    # When
    request = GenerationRequest.model_validate(data)

    # Then
    for name, value in expected.items():
        if name == "num_loras":
            assert len(request.loras) == value
        elif name == "scale":
            assert request.loras[0].scale == value
        else:
            assert getattr(request, name) == value


# (id, body, the exact `message` of the 400 envelope)
INVALID = [
    ("prompt_missing", {}, "prompt is required"),
    ("prompt_empty", {"prompt": ""}, PROMPT_RULE),
    ("prompt_whitespace", {"prompt": " \n\t "}, PROMPT_RULE),
    ("prompt_too_long", {"prompt": "p" * 2001}, PROMPT_RULE),
    ("prompt_number", {"prompt": 123}, PROMPT_RULE),
    ("prompt_list", {"prompt": ["a"]}, PROMPT_RULE),
    ("prompt_null", {"prompt": None}, PROMPT_RULE),
    ("strength_below", body(strength=-0.01), STRENGTH_RULE),
    ("strength_above", body(strength=1.01), STRENGTH_RULE),
    ("strength_bool", body(strength=True), STRENGTH_RULE),
    ("strength_nan", body(strength=float("nan")), STRENGTH_RULE),
    ("strength_text", body(strength="strong"), STRENGTH_RULE),
    ("loras_4", body(loras=[lora()] * 4), LORAS_RULE),
    ("loras_not_list", body(loras={"path": "a/b", "scale": 1}), LORAS_RULE),
    ("loras_null", body(loras=None), LORAS_RULE),
    ("lora_not_object", body(loras=["a/b"]), "loras[0] must be a JSON object"),
    ("lora_scale_below", body(loras=[lora(scale=-0.1)]), "loras[0].scale must be a number from 0.0 to 4.0"),
    ("lora_scale_above", body(loras=[lora(scale=4.01)]), "loras[0].scale must be a number from 0.0 to 4.0"),
    ("lora_scale_bool", body(loras=[lora(scale=True)]), "loras[0].scale must be a number from 0.0 to 4.0"),
    ("lora_scale_missing", body(loras=[{"path": "a/b"}]), "loras[0].scale is required"),
    ("lora_path_missing", body(loras=[{"scale": 1}]), "loras[0].path is required"),
    ("lora_extra_field", body(loras=[{**lora(), "weight": 1}]), f"unknown field 'loras[0].weight' {UNKNOWN}"),
    (
        "lora_second_bad",
        body(loras=[lora(), lora(scale=9)]),
        "loras[1].scale must be a number from 0.0 to 4.0",
    ),
    ("size_w_255", body(size="255*1024"), SIZE_RULE),
    ("size_h_255", body(size="1024*255"), SIZE_RULE),
    ("size_w_1537", body(size="1537*1024"), SIZE_RULE),
    ("size_h_1537", body(size="1024*1537"), SIZE_RULE),
    ("size_x", body(size="1024x1024"), SIZE_RULE),
    ("size_half", body(size="1024*"), SIZE_RULE),
    ("size_letters", body(size="a*b"), SIZE_RULE),
    ("size_spaces", body(size="1024 * 1024"), SIZE_RULE),
    ("size_leading_zero", body(size="0512*0512"), SIZE_RULE),
    ("size_unicode_digits", body(size="\u0661\u0660\u0662\u0664*1024"), SIZE_RULE),
    ("size_number", body(size=1024), SIZE_RULE),
    ("size_trailing_newline", body(size="1024*1024\n"), SIZE_RULE),
    ("num_images_0", body(num_images=0), NUM_RULE),
    ("num_images_5", body(num_images=5), NUM_RULE),
    ("num_images_4_5", body(num_images=4.5), NUM_RULE),
    ("num_images_true", body(num_images=True), NUM_RULE),
    ("num_images_abc", body(num_images="abc"), NUM_RULE),
    ("num_images_string_float", body(num_images="4.0"), NUM_RULE),
    ("num_images_padded_string", body(num_images=" 4"), NUM_RULE),
    ("num_images_null", body(num_images=None), NUM_RULE),
    ("seed_minus_2", body(seed=-2), SEED_RULE),
    ("seed_2_pow_31", body(seed=2147483648), SEED_RULE),
    ("seed_false", body(seed=False), SEED_RULE),
    ("output_format_gif", body(output_format="gif"), 'output_format must be one of "jpeg", "png" or "webp"'),
    (
        "output_format_upper",
        body(output_format="PNG"),
        'output_format must be one of "jpeg", "png" or "webp"',
    ),
    ("bool_string_true", body(enable_sync_mode="true"), f"enable_sync_mode {BOOL}"),
    ("bool_one", body(enable_base64_output=1), f"enable_base64_output {BOOL}"),
    ("bool_zero", body(enable_safety_checker=0), f"enable_safety_checker {BOOL}"),
    ("bool_null", body(enable_safety_checker=None), f"enable_safety_checker {BOOL}"),
    ("unknown_field", body(foo=1), f"unknown field 'foo' {UNKNOWN}"),
    ("typo_field", body(num_image=2), f"unknown field 'num_image' {UNKNOWN}"),
    ("control_char_field_name", body(**{"a\nb": 1}), f"unknown field 'a\\nb' {UNKNOWN}"),
    ("body_list", [body()], "body must be a JSON object"),
    ("body_string", "prompt", "body must be a JSON object"),
    ("body_null", None, "body must be a JSON object"),
    ("image_http", body(image="http://cdn.example.com/a.png"), f"image {SCHEME}"),
    ("image_data_uri", body(image="data:image/png;base64,iVBORw0KGgo="), f"image {SCHEME} (got data:)"),
    ("image_ftp", body(image="ftp://cdn.example.com/a.png"), f"image {SCHEME} (got ftp:)"),
    ("image_relative", body(image="/a.png"), f"image {SCHEME}"),
    ("image_no_host", body(image="https:///a.png"), "image has no host"),
    ("image_only_scheme", body(image="https://"), "image has no host"),
    ("image_port_only", body(image="https://:443/a.png"), "image has no host"),
    ("image_bad_ipv6", body(image="https://[::1/a.png"), "image is not a valid URL"),
    ("image_bad_host", body(image="https://ex%61mple.com/a.png"), "image host must not be percent-encoded"),
    ("image_bad_port", body(image="https://h.example:99999/a.png"), "image port is not valid"),
    ("image_space", body(image="https://cdn.example.com/a b.png"), f"image {SPACES}"),
    ("image_leading_space", body(image=" https://cdn.example.com/a.png"), f"image {SPACES}"),
    ("image_tab_in_host", body(image="https://cdn.exa\tmple.com/a.png"), f"image {SPACES}"),
    ("image_newline", body(image="https://cdn.example.com/a.png\n"), f"image {SPACES}"),
    ("image_zero_width", body(image="https://cdn.example.com/\u200ba.png"), f"image {SPACES}"),
    ("image_credentials", body(image="https://u:p@cdn.example.com/a.png"), f"image {CREDENTIALS}"),
    ("image_user_only", body(image="https://u@cdn.example.com/a.png"), f"image {CREDENTIALS}"),
    (
        "image_backslash",
        body(image="https://cdn.example.com\\@evil/a.png"),
        f"image {SPACES}",
    ),
    (
        "image_too_long",
        body(image="https://h.example/" + "a" * 2031),
        "image must be at most 2048 characters long",
    ),
    ("image_number", body(image=5), "image must be a string holding an https:// URL"),
    (
        "mask_without_image",
        body(mask_image="https://h.example/m.png"),
        "mask_image requires image" + (" (the mask marks which part of image to repaint)"),
    ),
    (
        "mask_http",
        body(image="https://h.example/a.png", mask_image="http://h.example/m.png"),
        f"mask_image {SCHEME}",
    ),
]


@pytest.mark.parametrize(("data", "message"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_submit_bodies_are_rejected_with_a_stable_message(data: Any, message: str) -> None:
    assert rejection(data) == message


HOSTILE_LORA_PATHS = [
    ("http", "http://cdn.example.com/x.safetensors", f"loras[0].path {PATH_RULE}"),
    ("file", "file:///etc/passwd", f"loras[0].path {PATH_RULE}"),
    ("s3", "s3://bucket/x.safetensors", f"loras[0].path {PATH_RULE}"),
    ("javascript", "javascript:alert(1)", f"loras[0].path {PATH_RULE}"),
    ("dotdot_first", "../x", f"loras[0].path {PATH_RULE}"),
    ("dotdot_owner", "owner/../repo", f"loras[0].path {PATH_RULE}"),
    ("dotdot_repo", "owner/..", f"loras[0].path {PATH_RULE}"),
    ("dotdot_inside", "own..er/repo", f"loras[0].path {PATH_RULE}"),
    ("leading_space", " owner/repo", f"loras[0].path {PATH_RULE}"),
    ("trailing_newline", "owner/repo\n", f"loras[0].path {PATH_RULE}"),
    ("empty", "", f"loras[0].path {PATH_RULE}"),
    ("three_parts", "owner/repo/extra", f"loras[0].path {PATH_RULE}"),
    ("one_part", "repo", f"loras[0].path {PATH_RULE}"),
    ("leading_dash", "-owner/repo", f"loras[0].path {PATH_RULE}"),
    ("trailing_dot", "owner/repo.", f"loras[0].path {PATH_RULE}"),
    ("part_97_chars", "o" * 97 + "/repo", f"loras[0].path {PATH_RULE}"),
    ("unicode", "ownér/repo", f"loras[0].path {PATH_RULE}"),
    ("number", 42, f"loras[0].path {PATH_RULE}"),
    (
        "https_not_safetensors",
        "https://cdn.example.com/x.bin",
        ("loras[0].path must be an https:// URL whose path ends in a .safetensors file"),
    ),
    (
        "https_safetensors_only_in_query",
        "https://cdn.example.com/x?f=a.safetensors",
        ("loras[0].path must be an https:// URL whose path ends in a .safetensors file"),
    ),
    ("https_credentials", "https://user:pass@cdn.example.com/x.safetensors", f"loras[0].path {CREDENTIALS}"),
    (
        "https_dotdot",
        "https://cdn.example.com/loras/../x.safetensors",
        ("loras[0].path must not contain '..' path segments"),
    ),
    (
        "https_encoded_dotdot",
        "https://cdn.example.com/loras/%2e%2e/x.safetensors",
        ("loras[0].path must not contain '..' path segments"),
    ),
    ("https_whitespace", "https://cdn.example.com/a b.safetensors", f"loras[0].path {SPACES}"),
    ("https_no_host", "https:///x.safetensors", "loras[0].path has no host"),
]


@pytest.mark.parametrize(
    ("path", "message"), [c[1:] for c in HOSTILE_LORA_PATHS], ids=[c[0] for c in HOSTILE_LORA_PATHS]
)
def test_hostile_lora_paths_are_rejected(path: Any, message: str) -> None:
    assert rejection(body(loras=[lora(path)])) == message


ALLOWLIST = ["XLabs-AI/flux-RealismLora", "my-org/", "https://cdn.example.com/loras/"]
DENIED = "loras[0].path is not one of the LoRAs this server allows"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("XLabs-AI/flux-RealismLora", True),  # exact entry
        ("XLabs-AI/flux-RealismLora2", False),  # an entry without "/" is not a prefix
        ("xlabs-ai/flux-realismlora", False),  # exact means case-sensitive
        ("my-org/anything", True),  # prefix entry
        ("my-organisation/x", False),  # prefix ends at the "/"
        ("https://cdn.example.com/loras/a.safetensors", True),
        ("https://cdn.example.com/loras/sub/a.safetensors", True),
        ("https://cdn.example.com/other/a.safetensors", False),
        ("https://cdn.example.com.evil.test/loras/a.safetensors", False),
        ("other/repo", False),
    ],
)
def test_lora_allowlist_allows_exact_entries_and_slash_prefixes(path: str, allowed: bool) -> None:
    data = body(loras=[lora(path)])
    context = {"lora_allowlist": ALLOWLIST}
    if allowed:
        assert GenerationRequest.model_validate(data, context=context).loras[0].path == path
    else:
        assert rejection(data, context=context) == DENIED


def test_lora_allowlist_cannot_be_escaped_with_dotdot() -> None:
    path = "https://cdn.example.com/loras/../private/x.safetensors"
    message = rejection(body(loras=[lora(path)]), context={"lora_allowlist": ALLOWLIST})
    assert message == "loras[0].path must not contain '..' path segments"


@pytest.mark.parametrize("context", [None, {}, {"lora_allowlist": []}, {"other": 1}])
def test_without_a_non_empty_allowlist_any_valid_lora_is_allowed(context: dict | None) -> None:
    request = GenerationRequest.model_validate(body(loras=[lora("any/repo")]), context=context)
    assert request.loras[0].path == "any/repo"


def test_lora_validates_alone_with_the_allowlist_context() -> None:
    assert Lora.model_validate(lora("my-org/x"), context={"lora_allowlist": ["my-org/"]}).scale == 1.0
    assert rejection(lora("a/b"), Lora, context={"lora_allowlist": ["my-org/"]}) == (
        "path is not one of the LoRAs this server allows"
    )


def test_every_bad_field_is_named_once_in_field_order() -> None:
    # Given a body with four different mistakes
    data = {"prompt": "", "num_images": 9, "loras": [lora(), lora(scale=5)], "colour": "red"}

    # When / Then
    assert rejection(data) == "; ".join(
        [
            PROMPT_RULE,
            "loras[1].scale must be a number from 0.0 to 4.0",
            NUM_RULE,
            f"unknown field 'colour' {UNKNOWN}",
        ]
    )


def test_messages_never_leak_pydantic_urls_tracebacks_or_the_rejected_value() -> None:
    secret = "https://admin:hunter2@cdn.example.com/a.png"
    message = rejection(body(image=secret, num_images="x" * 500, size={"a": 1}))
    assert "hunter2" not in message
    assert "errors.pydantic.dev" not in message
    assert "Traceback" not in message
    assert "x" * 20 not in message


def test_long_unknown_field_names_are_truncated_in_the_message() -> None:
    message = rejection(body(**{"k" * 500: 1}))
    assert message == f"unknown field '{'k' * 64}...' {UNKNOWN}"


def test_json_input_errors_are_described_too() -> None:
    with pytest.raises(ValidationError) as caught:
        GenerationRequest.model_validate_json('{"prompt": "a", "num_images": true}')
    assert describe_validation_error(caught.value) == NUM_RULE
    with pytest.raises(ValidationError) as caught:
        GenerationRequest.model_validate_json("{not json")
    assert describe_validation_error(caught.value) == "body must be valid JSON"


def test_json_mode_keeps_the_same_type_rules() -> None:
    request = GenerationRequest.model_validate_json('{"prompt": "a", "num_images": "4", "seed": 7}')
    assert (request.num_images, request.seed) == (4, 7)
    with pytest.raises(ValidationError):
        GenerationRequest.model_validate_json('{"prompt": "a", "enable_sync_mode": "true"}')


def test_width_and_height_come_from_size() -> None:
    request = GenerationRequest.model_validate(body(size="768*1344"))
    assert (request.width, request.height) == (768, 1344)


def test_upstream_payload_is_every_known_field_with_none_omitted() -> None:
    # Given a request that leaves most fields at their defaults and sets image to ""
    request = GenerationRequest.model_validate(body(image="", num_images="2", loras=[lora(scale=1)]))

    # When
    payload = request.upstream_payload()

    # Then defaults are explicit (upstream defaults never decide), absent image is omitted
    assert payload == {
        "prompt": "a cat in a spacesuit",
        "strength": 0.8,
        "loras": [{"path": "XLabs-AI/flux-RealismLora", "scale": 1.0}],
        "size": "1024*1024",
        "num_images": 2,
        "seed": -1,
        "output_format": "jpeg",
        "enable_base64_output": False,
        "enable_sync_mode": False,
        "enable_safety_checker": True,
    }
    assert json.loads(json.dumps(payload)) == payload


def test_upstream_payload_carries_image_and_mask_when_given() -> None:
    data = body(image="https://h.example/a.png", mask_image="https://h.example/m.png", strength=0.3)
    payload = GenerationRequest.model_validate(data).upstream_payload()
    assert (payload["image"], payload["mask_image"], payload["strength"]) == (
        "https://h.example/a.png",
        "https://h.example/m.png",
        0.3,
    )


def test_generation_request_json_schema_documents_bounds_and_forbids_extras() -> None:
    schema = GenerationRequest.model_json_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["prompt"]
    assert props["prompt"]["maxLength"] == MAX_PROMPT_LENGTH
    assert (props["num_images"]["minimum"], props["num_images"]["maximum"]) == (1, 4)
    assert (props["seed"]["minimum"], props["seed"]["maximum"]) == (-1, 2147483647)
    assert props["loras"]["maxItems"] == 3
    assert props["output_format"]["enum"] == ["jpeg", "png", "webp"]


# --- prediction -----------------------------------------------------------------------------
UPSTREAM_EXAMPLE = """{"code":200,"message":"success","data":{
  "id":"e6832d4abffb4d79bfbca19783fca133","model":"wavespeed-ai/flux-schnell-lora",
  "outputs":["https://d11ewybssaphwx.cloudfront.net/output/<uuid>-u1_<uuid>.jpeg"],
  "urls":{"get":"https://api.wavespeed.ai/api/v3/predictions/e6832d4abffb4d79bfbca19783fca133/result"},
  "has_nsfw_contents":[false],"status":"completed",
  "created_at":"2025-05-19T06:09:15.948268264Z","error":"",
  "executionTime":1200,"timings":{"inference":1200}}}"""


def test_prediction_round_trips_the_upstream_example_key_for_key() -> None:
    # Given the example from WaveSpeed's API reference
    upstream = json.loads(UPSTREAM_EXAMPLE)

    # When
    envelope = Envelope[Prediction].model_validate(upstream)
    assert envelope.data is not None
    body_out = success(envelope.data)

    # Then: same keys in the same order, same values (nanoseconds become microseconds)
    expected = upstream["data"] | {"created_at": "2025-05-19T06:09:15.948268Z"}
    assert list(body_out) == ["code", "message", "data"]
    assert list(body_out["data"]) == list(upstream["data"])
    assert body_out == {"code": 200, "message": "success", "data": expected}


def prediction(**overrides: Any) -> Prediction:
    fields: dict[str, Any] = {
        "id": "0123456789abcdef0123456789abcdef",
        "urls": {"get": "https://api.example.com/api/v3/predictions/0123456789abcdef0123456789abcdef/result"},
        "status": "created",
        "created_at": datetime(2025, 5, 19, 6, 9, 15, 948268, tzinfo=UTC),
    }
    return Prediction.model_validate(fields | overrides)


def test_prediction_defaults_serialise_to_the_upstream_shape() -> None:
    dumped = prediction().model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == {
        "id": "0123456789abcdef0123456789abcdef",
        "model": "wavespeed-ai/flux-schnell-lora",
        "outputs": [],
        "urls": {"get": "https://api.example.com/api/v3/predictions/0123456789abcdef0123456789abcdef/result"},
        "has_nsfw_contents": [],
        "status": "created",
        "created_at": "2025-05-19T06:09:15.948268Z",
        "error": "",
        "executionTime": 0,
        "timings": {"inference": 0},
    }


def test_sync_timeout_shape_carries_code_5004_inside_data() -> None:
    item = prediction(status="processing", code=5004, error="Sync mode timed out")
    dumped = success(item)["data"]
    assert (dumped["code"], dumped["status"], dumped["error"]) == (5004, "processing", "Sync mode timed out")


def test_execution_time_is_accepted_by_name_and_always_serialised_by_alias() -> None:
    item = prediction(execution_time=950)
    assert item.model_dump(mode="json")["executionTime"] == 950
    assert "execution_time" not in item.model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize(
    ("created_at", "serialised"),
    [
        ("2025-05-19T06:09:15.948268264Z", "2025-05-19T06:09:15.948268Z"),
        ("2025-05-19T08:09:15+02:00", "2025-05-19T06:09:15.000000Z"),
        (datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-5))), "2025-01-01T05:00:00.000000Z"),
    ],
)
def test_created_at_is_serialised_as_rfc3339_utc_with_z(created_at: Any, serialised: str) -> None:
    item = prediction(created_at=created_at)
    assert item.created_at.utcoffset() == timedelta(0)
    assert item.model_dump(mode="json")["created_at"] == serialised


@pytest.mark.parametrize("naive", ["2025-05-19T06:09:15", datetime(2025, 5, 19, 6, 9, 15)])  # noqa: DTZ001
def test_naive_created_at_is_rejected(naive: Any) -> None:
    with pytest.raises(ValidationError):
        prediction(created_at=naive)


@pytest.mark.parametrize(
    "bad_id", ["E6832D4ABFFB4D79BFBCA19783FCA133", "e6832d4a", "e6832d4abffb4d79bfbca19783fca133\n", "g" * 32]
)
def test_prediction_id_must_be_32_lowercase_hex(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        prediction(id=bad_id)


def test_prediction_ignores_upstream_extras_like_input() -> None:
    item = prediction(input={"prompt": "x"})
    assert "input" not in item.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- envelope -------------------------------------------------------------------------------
def test_error_body_is_the_envelope_with_null_data() -> None:
    assert error_body(400, "num_images must be a whole number from 1 to 4") == {
        "code": 400,
        "message": "num_images must be a whole number from 1 to 4",
        "data": None,
    }


def test_success_wraps_plain_data_unchanged() -> None:
    assert success({"a": 1}) == {"code": 200, "message": "success", "data": {"a": 1}}


# --- uploads --------------------------------------------------------------------------------
FILENAME_RULE = "filename must be 1 to 255 characters without path separators (/ or \\) or control characters"
SIZE_BYTES_RULE = "size must be a whole number of bytes from 1 to 20971520 (20 MiB)"
TYPE_RULE = "content_type must be one of image/jpeg, image/png, image/webp"


def upload(**fields: Any) -> dict[str, Any]:
    return {"filename": "IMG 0001.jpg", "size": 1234, "content_type": "image/jpeg"} | fields


@pytest.mark.parametrize(
    "data",
    [
        upload(),
        upload(filename="f" * 255),
        upload(size=1),
        upload(size=MAX_UPLOAD_BYTES),
        upload(size="2048"),
        upload(content_type="image/png"),
        upload(content_type="image/webp"),
        upload(filename="фото.webp"),
    ],
)
def test_valid_upload_ticket_requests(data: dict) -> None:
    ticket = UploadTicketRequest.model_validate(data)
    assert ticket.size == int(data["size"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (upload(filename=""), FILENAME_RULE),
        (upload(filename="f" * 256), FILENAME_RULE),
        (upload(filename="../x.jpg"), FILENAME_RULE),
        (upload(filename="a/b.jpg"), FILENAME_RULE),
        (upload(filename="a\\b.jpg"), FILENAME_RULE),
        (upload(filename="a\nb.jpg"), FILENAME_RULE),
        (upload(filename="a\x00.jpg"), FILENAME_RULE),
        (upload(filename=".."), FILENAME_RULE),
        (upload(filename=7), FILENAME_RULE),
        (upload(size=0), SIZE_BYTES_RULE),
        (upload(size=MAX_UPLOAD_BYTES + 1), SIZE_BYTES_RULE),
        (upload(size=True), SIZE_BYTES_RULE),
        (upload(size=1.5), SIZE_BYTES_RULE),
        (upload(content_type="image/gif"), TYPE_RULE),
        (upload(content_type="IMAGE/JPEG"), TYPE_RULE),
        (upload(extra=1), f"unknown field 'extra' {UNKNOWN}"),
        ({"filename": "a.jpg"}, "size is required; content_type is required"),
    ],
)
def test_invalid_upload_ticket_requests(data: dict, message: str) -> None:
    assert rejection(data, UploadTicketRequest) == message


def test_upload_ticket_serialises_in_the_upstream_shape() -> None:
    ticket = UploadTicket(
        download_url="https://bucket.example/uploads/o/a.jpg",
        filename="a.jpg",
        size=3,
        upload=UploadSpec(url="https://bucket.example/put", headers={"Content-Type": "image/jpeg"}),
    )
    assert success(ticket)["data"] == {
        "download_url": "https://bucket.example/uploads/o/a.jpg",
        "filename": "a.jpg",
        "size": 3,
        "upload": {
            "method": "PUT",
            "url": "https://bucket.example/put",
            "headers": {"Content-Type": "image/jpeg"},
        },
    }


def test_binary_upload_serialises_with_type_image() -> None:
    item = BinaryUpload(download_url="https://b.example/a.png", filename="a.png", size=9)
    assert item.model_dump(mode="json") == {
        "type": "image",
        "download_url": "https://b.example/a.png",
        "filename": "a.png",
        "size": 9,
    }
