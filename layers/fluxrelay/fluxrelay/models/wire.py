"""Public wire models: the WaveSpeed v3 submit body and envelope (the prediction: `predictions.py`,
also named here; uploads: `uploads.py`).

One model per boundary (WaveSpeed v3 API). The submit body is validated *strictly*
because the real upstream silently drops unknown fields and bills the task with defaults: a typo
like `num_image` must be a 400 here, never a paid image the caller did not ask for.

Every constrained field type below carries its rule in words (`_rule(...)`): whatever pydantic
finds wrong with a value, the caller reads one stable sentence such as
"num_images must be a whole number from 1 to 4" (see `describe_validation_error`).

URLs follow the SSRF guard's rules (`fluxrelay.adapters.urlguard.rules`) minus the DNS lookup:
whether a URL resolves to a public address is decided by the guard right before any fetch. The
URL policy and the LoRA allowlist come from the validation context
(`model_validate(body, context=settings.validation_context())`), never from the environment.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from fluxrelay.adapters.urlguard.rules import MAX_URL_LENGTH, UrlPolicy, url_problem
from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.models import MODEL_ID
from fluxrelay.models.predictions import (
    Prediction,
    PredictionMetrics,
    PredictionUrls,
    Timings,
    WithheldOutputs,
)
from fluxrelay.models.types import UtcDatetime

__all__ = [
    "CANCEL_AFTER_HEADER",
    "MAX_IMAGE_SIDE",
    "MAX_LORAS",
    "MAX_PROMPT_LENGTH",
    "MAX_SEED",
    "MAX_URL_LENGTH",
    "MIN_IMAGE_SIDE",
    "MODEL_ID",
    "Envelope",
    "ErrorEnvelope",
    "GenerationRequest",
    "HttpsUrl",
    "ImageSize",
    "Lora",
    "LoraPath",
    "LoraScale",
    "NumImages",
    "OptionalHttpsUrl",
    "OutputFormat",
    "Prediction",
    "PredictionEnvelope",
    "PredictionMetrics",
    "PredictionUrls",
    "Prompt",
    "Seed",
    "Strength",
    "Timings",
    "UtcDatetime",
    "WithheldOutputs",
    "describe_errors",
    "describe_validation_error",
    "error_body",
    "parse_cancel_after",
    "parse_json_object",
    "success",
]

# Upstream only says "non-empty"; 2000 characters is our cap. FLUX's T5 encoder reads at most
# 512 tokens (schnell: 256), so longer prompts are silently truncated anyway and only cost
# request size. Raising it is safe; lowering it breaks clients.
MAX_PROMPT_LENGTH = 2000
MAX_LORAS = 3
MIN_IMAGE_SIDE = 256
MAX_IMAGE_SIDE = 1536
MAX_SEED = 2_147_483_647

# The one error type our rules raise; `describe_validation_error` prints "<field path> <rule>".
_RULE_ERROR = "fluxrelay_rule"
_UNKNOWN_FIELD_HINT = "not part of the API; it would be silently ignored and billed with defaults upstream"


def _violation(rule: str) -> PydanticCustomError:
    # The rule goes into the context, not the template, so braces in a rule can never be
    # misread as placeholders.
    return PydanticCustomError(_RULE_ERROR, "{rule}", {"rule": rule})


def _rule(
    rule: str, *, reject: tuple[type, ...] = (), refuse: Callable[[Any], bool] | None = None
) -> WrapValidator:
    """Replace whatever pydantic says about a value with one stable sentence.

    `reject` lists input types refused before pydantic's lax coercion sees them (bool is an int
    subclass, so without this `true` would quietly become `1`); `refuse` refuses other inputs
    before coercion.
    """

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, reject) or (refuse is not None and refuse(value)):
            raise _violation(rule)
        try:
            return handler(value)
        except ValidationError:
            raise _violation(rule) from None

    return WrapValidator(validate)


_INT_STRING = re.compile(r"-?[0-9]{1,20}")


def _whole_number(rule: str) -> WrapValidator:
    """Lax ints, minus the surprises: 4, 4.0 and "4" pass; true, 4.5, "4.0", " 4", b"4" do not."""
    return _rule(
        rule,
        reject=(bool, bytes, bytearray),
        refuse=lambda value: isinstance(value, str) and not _INT_STRING.fullmatch(value),
    )


_NUMBER_REJECT = (bool, bytes, bytearray)


def _has_space_or_control(text: str) -> bool:
    # Cc/Cf catch NUL, CR/LF, TAB and invisible format characters (bidi overrides, zero-width);
    # Z* catches every Unicode space.
    return any(
        unicodedata.category(char)[0] == "Z" or unicodedata.category(char) in {"Cc", "Cf"} for char in text
    )


# --- URLs -----------------------------------------------------------------------------------
def _url_policy(context: Any) -> UrlPolicy:
    """The URL policy named by the validation context (`{"url_policy": "development"}`), strict
    when there is none: what validates never depends on the process environment."""
    name = context.get("url_policy") if isinstance(context, Mapping) else None
    return UrlPolicy.from_name(name) if name else UrlPolicy.strict()


def _check_https_url(value: str, info: ValidationInfo) -> str:
    # The SSRF guard's own rules (minus the DNS lookup): one set of URL rules for every URL.
    problem = url_problem(value, _url_policy(info.context))
    if problem:
        raise _violation(problem)
    return value


def _empty_to_none(value: Any) -> Any:
    # WaveSpeed documents image as absent *or* "" (its web form sends empty strings).
    return None if value == "" else value


HttpsUrl = Annotated[
    StrictStr,
    # Schema only (OpenAPI); the checks themselves are the guard's `url_problem`, in words.
    Field(json_schema_extra={"format": "uri", "maxLength": MAX_URL_LENGTH}),
    _rule("must be a string holding an https:// URL"),
    AfterValidator(_check_https_url),
]
"""A syntactically safe https URL as given (not normalised), at most MAX_URL_LENGTH characters."""

OptionalHttpsUrl = Annotated[HttpsUrl | None, BeforeValidator(_empty_to_none)]

# --- LoRAs ----------------------------------------------------------------------------------
_HF_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_HF_ID = re.compile(rf"{_HF_PART}/{_HF_PART}")
_LORA_PATH_RULE = 'must be a Hugging Face id like "owner/repo" or an https:// URL ending in .safetensors'


def _check_lora_path(value: str, info: ValidationInfo) -> str:
    if value.lower().startswith("https://"):
        _check_https_url(value, info)
        filename = urlsplit(value).path.rsplit("/", 1)[-1]
        if not filename.endswith(".safetensors") or filename == ".safetensors":
            raise _violation("must be an https:// URL whose path ends in a .safetensors file")
        return value
    if _HF_ID.fullmatch(value) and ".." not in value:
        return value
    raise _violation(_LORA_PATH_RULE)


LoraPath = Annotated[StrictStr, _rule(_LORA_PATH_RULE), AfterValidator(_check_lora_path)]
# allow_inf_nan=False: NaN compares false with both bounds and would slip through.
LoraScale = Annotated[
    float,
    Field(ge=0.0, le=4.0, allow_inf_nan=False),
    _rule("must be a number from 0.0 to 4.0", reject=_NUMBER_REJECT),
]


def _lora_allowlist(context: Any) -> list[str]:
    if not isinstance(context, Mapping):
        return []
    entries = context.get("lora_allowlist")
    if isinstance(entries, list | tuple | set | frozenset):
        return [entry for entry in entries if isinstance(entry, str) and entry]
    return []


class Lora(BaseModel):
    """One LoRA to apply: a Hugging Face repo id or an https URL of a .safetensors file.

    When the validation context carries a non-empty `lora_allowlist`, the path must equal an
    entry, or start with an entry that ends in "/" (a prefix such as "my-org/" or
    "https://cdn.example.com/loras/"). Comparison is exact and case-sensitive; ".." segments are
    rejected before this check, so a prefix cannot be escaped.
    """

    model_config = ConfigDict(extra="forbid")

    path: LoraPath
    scale: LoraScale

    @field_validator("path")
    @classmethod
    def _allowed_by_operator(cls, value: str, info: ValidationInfo) -> str:
        allowlist = _lora_allowlist(info.context)
        if allowlist and not any(
            value == entry or (entry.endswith("/") and value.startswith(entry)) for entry in allowlist
        ):
            raise _violation("is not one of the LoRAs this server allows")
        return value


# --- generation request ---------------------------------------------------------------------
_PROMPT_RULE = f"must be a non-empty string of at most {MAX_PROMPT_LENGTH} characters"


def _check_prompt(value: str) -> str:
    if not value.strip():
        raise _violation(_PROMPT_RULE)
    return value


Prompt = Annotated[
    StrictStr,
    Field(min_length=1, max_length=MAX_PROMPT_LENGTH),
    _rule(_PROMPT_RULE),
    AfterValidator(_check_prompt),
]

_SIZE = re.compile(r"([1-9][0-9]{2,3})\*([1-9][0-9]{2,3})")
_SIZE_RULE = f'must look like "1024*1024" with each side from {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE}'


def _check_size(value: str) -> str:
    match = _SIZE.fullmatch(value)
    if not match or not all(MIN_IMAGE_SIDE <= int(side) <= MAX_IMAGE_SIDE for side in match.groups()):
        raise _violation(_SIZE_RULE)
    return value


ImageSize = Annotated[
    StrictStr,
    Field(
        pattern=r"^[1-9][0-9]{2,3}\*[1-9][0-9]{2,3}$",
        # The side bounds a pattern cannot say, for clients that build a form from the document.
        json_schema_extra={"x-side-minimum": MIN_IMAGE_SIDE, "x-side-maximum": MAX_IMAGE_SIDE},
    ),
    _rule(_SIZE_RULE),
    AfterValidator(_check_size),
]
"""`"W*H"`, each side MIN_IMAGE_SIDE..MAX_IMAGE_SIDE, no leading zeros or spaces."""

Strength = Annotated[
    float,
    Field(ge=0.0, le=1.0, allow_inf_nan=False),
    _rule("must be a number from 0.0 to 1.0", reject=_NUMBER_REJECT),
]
NumImages = Annotated[int, Field(ge=1, le=4), _whole_number("must be a whole number from 1 to 4")]
Seed = Annotated[
    int,
    Field(ge=-1, le=MAX_SEED),
    _whole_number(f"must be a whole number from -1 to {MAX_SEED} (-1 picks a random seed)"),
]
OutputFormat = Annotated[Literal["jpeg", "png", "webp"], _rule('must be one of "jpeg", "png" or "webp"')]
_Flag = Annotated[StrictBool, _rule("must be true or false (a JSON boolean, not a string or number)")]


def _too_many_loras(value: Any) -> Any:
    # Checked before the items, so a 40-item list fails fast with one clear message.
    if not isinstance(value, list) or len(value) > MAX_LORAS:
        raise _violation(f"must be a list of at most {MAX_LORAS} LoRAs")
    return value


_Loras = Annotated[list[Lora], Field(max_length=MAX_LORAS), BeforeValidator(_too_many_loras)]


class GenerationRequest(BaseModel):
    """The submit body of `POST /api/v3/wavespeed-ai/flux-schnell-lora`, every upstream field.

    `size` accepts any integer sides in range, as upstream does; FLUX renders in multiples of 16
    (diffusers floors other sides to 16), so "1000*1000" yields a 992x992 image.
    Validate with `GenerationRequest.model_validate(body, context=settings.validation_context())`
    to apply the deployment's URL policy and LoRA allowlist.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt = Field(description=f"What to draw; at most {MAX_PROMPT_LENGTH} characters.")
    image: OptionalHttpsUrl = Field(None, description='img2img source: a public https URL; "" = none.')
    mask_image: OptionalHttpsUrl = Field(
        None, description="Inpainting mask (white = generate, black = keep); requires image."
    )
    strength: Strength = Field(0.8, description="How far img2img may move away from image (0..1).")
    # A plain default (copied for each instance), not `default_factory=list`: see `Prediction`.
    loras: _Loras = Field([], description=f"Up to {MAX_LORAS} LoRAs.")
    size: ImageSize = Field("1024*1024", description='"W*H"; FLUX renders in multiples of 16.')
    num_images: NumImages = 1
    seed: Seed = Field(-1, description="-1 picks a random seed.")
    output_format: OutputFormat = "jpeg"
    enable_base64_output: _Flag = False
    enable_sync_mode: _Flag = Field(False, description="Block until the task ends.")
    enable_safety_checker: _Flag = True

    @field_validator("mask_image")
    @classmethod
    def _mask_needs_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        # "image" is missing from info.data when it failed itself; that error is reported already.
        if value is not None and "image" in info.data and info.data["image"] is None:
            raise _violation("requires image (the mask marks which part of image to repaint)")
        return value

    @property
    def width(self) -> int:
        return int(self.size.split("*", 1)[0])

    @property
    def height(self) -> int:
        return int(self.size.split("*", 1)[1])

    def upstream_payload(self) -> dict[str, Any]:
        """The JSON body for WaveSpeed: every field explicit (no upstream defaults), None omitted."""
        return self.model_dump(mode="json", exclude_none=True)


# --- Cancel-After -----------------------------------------------------------------------------
CANCEL_AFTER_HEADER = "Cancel-After"
_DURATION = re.compile(r"(?:([0-9]{1,5})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,7})s)?")
CANCEL_AFTER_RULE = (
    "Cancel-After must be a duration such as 45s, 5m, 1h or 1m30s (a bare number is seconds), at least 1 s"
)


def parse_cancel_after(value: str) -> int:
    """The seconds of a `Cancel-After` header (the caller's deadline for the job, as Replicate
    names it), or an InvalidRequestError naming the header."""
    text = value.strip().lower()
    if text.isdigit() and len(text) <= 7:
        seconds = int(text)
    else:
        found = _DURATION.fullmatch(text)
        if not text or found is None:
            raise InvalidRequestError(CANCEL_AFTER_RULE)
        hours, minutes, secs = (int(part or 0) for part in found.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 1:
        raise InvalidRequestError(CANCEL_AFTER_RULE)
    return seconds


# --- envelope -------------------------------------------------------------------------------
DataT = TypeVar("DataT")


class Envelope(BaseModel, Generic[DataT]):
    """`{"code", "message", "data"}`; `code` mirrors the HTTP status. Mainly for OpenAPI and parsing.

    Routes answer a named subclass (`PredictionEnvelope`), so the OpenAPI document names its
    schemas in words rather than pydantic's "Envelope_Prediction_".

    Build bodies with `success()` / `error_body()`; do not dump an error envelope with
    `exclude_none=True` (that would drop the required `"data": null`).
    """

    code: int
    message: str
    data: DataT | None = None


class PredictionEnvelope(Envelope[Prediction]):
    pass


class ErrorEnvelope(BaseModel):
    """Every error answer: `code` is the HTTP status, `message` says what is wrong in words."""

    code: int
    message: str
    data: None = None


def success(data: Any) -> dict[str, Any]:
    """The 200 envelope around `data` (a model is dumped as JSON by alias, None fields omitted)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"code": 200, "message": "success", "data": data}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"code": status, "message": message, "data": None}


# --- error messages -------------------------------------------------------------------------
def _safe(name: str, limit: int = 64) -> str:
    # Field names come from the caller: escape control characters and cap the length.
    shown = name[:limit].encode("unicode_escape").decode("ascii")
    return shown + ("..." if len(name) > limit else "")


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + _safe(part)
    return path or "body"


def _sentence(error: Mapping[str, Any]) -> str:
    path = _field_path(tuple(error["loc"]))
    kind = error["type"]
    if kind == _RULE_ERROR:
        return f"{path} {error['ctx']['rule']}"
    if kind == "extra_forbidden":
        return f"unknown field '{path}' ({_UNKNOWN_FIELD_HINT})"
    if kind == "missing":
        return f"{path} is required"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"{path} must be a JSON object"
    if kind == "json_invalid":
        return f"{path} must be valid JSON"
    # Not one of our rules (e.g. a model parsed from upstream): pydantic's own short text.
    return f"{path}: {error['msg']}"


def describe_validation_error(exc: ValidationError) -> str:
    """One sentence per bad field, joined by "; " — the `message` of a 400 envelope.

    Sentences name the field path (`loras[1].scale`, `body` for the whole document) and the rule;
    they never contain a traceback, pydantic's docs URL, or the rejected value.
    """
    return describe_errors(exc.errors(include_url=False, include_input=False))


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """`describe_validation_error` for raw error dicts, e.g. Powertools' RequestValidationError,
    whose locations start with where the value came from ("body", "query")."""
    sentences: list[str] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        elif loc and loc[0] in ("query", "header"):
            # A parameter is flat: its name is the last part, also when a model groups them
            # (Powertools then adds the model's parameter name: ("query", "query", "limit")).
            loc = loc[-1:]
        sentence = _sentence({**error, "loc": loc})
        if sentence not in sentences:
            sentences.append(sentence)
    return "; ".join(sentences)


# --- JSON bodies ----------------------------------------------------------------------------
# Our bodies nest three levels deep ({"loras": [{"path": ...}]}); anything far deeper is hostile.
MAX_JSON_DEPTH = 16
# C0 and C1 control characters except tab and newline: NUL, CR, ESC... have no place in a prompt
# or a URL, and what they do upstream is unknown.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree about a duplicate key (first or last wins): refuse it rather than guess.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise InvalidRequestError(f"the key '{_safe(key)}' appears twice in one object; send it once")
        obj[key] = value
    return obj


def _not_json(constant: str) -> Any:
    # Python's json module accepts NaN and Infinity; JSON does not.
    raise ValueError(f"{constant} is not JSON")


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    """`text` as exactly one JSON object, or an InvalidRequestError that says in words what is
    wrong: not JSON, not one object, a duplicate key, nested deeper than MAX_JSON_DEPTH, or a
    string holding a control character (named by its field path, e.g. `loras[0].path`)."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_not_json)
    except RecursionError:  # the C parser's own guard, at about a thousand levels
        raise InvalidRequestError(_TOO_DEEP) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, NaN, an integer too long to read
        raise InvalidRequestError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequestError("the body must be a single JSON object")
    _check_json_values(value)
    return value


_TOO_DEEP = f"the body is nested too deeply (at most {MAX_JSON_DEPTH} levels of objects and arrays)"


def _check_json_values(document: dict[str, Any]) -> None:
    # Iterative, so no depth of input can exhaust the stack.
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(document, ())]
    while pending:
        value, loc = pending.pop()
        if isinstance(value, dict | list) and len(loc) >= MAX_JSON_DEPTH:
            raise InvalidRequestError(_TOO_DEEP)
        if isinstance(value, dict):
            pending.extend((item, (*loc, key)) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((item, (*loc, index)) for index, item in enumerate(value))
        elif isinstance(value, str) and _CONTROL_CHARACTER.search(value):
            raise InvalidRequestError(
                f"{_field_path(loc)} must not contain control characters (tab and newline are allowed)"
            )


_Request = TypeVar("_Request", bound=BaseModel)
