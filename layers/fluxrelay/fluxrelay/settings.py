"""Settings: one frozen dataclass, read once per container from the environment.

The template sets these variables from its Parameters; the local stack sets the same names.
Secrets are *not* settings: the WaveSpeed key comes from Secrets Manager (`wavespeed_secret_name`)
in the cloud, and only on a developer's machine from `WAVESPEED_API_KEY`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_core import InitErrorDetails

    from fluxrelay.domain.pricing import PriceTable


class UrlPolicyName(StrEnum):
    # strict: https only, public addresses only (every deployed stack).
    STRICT = "strict"
    # development: strict, plus http:// on loopback, so a developer can receive webhooks locally.
    DEVELOPMENT = "development"


class CancelledOutputs(StrEnum):
    """What happens to the images of a job cancelled while it ran upstream (which may still
    finish and bill it)."""

    # The workflow stops at once and notifies; images that arrive later are never fetched.
    DISCARD = "discard"
    # The workflow follows the upstream task to its end (within the deadline), stores its images
    # on the cancelled job, then notifies: the images are kept because they are paid for.
    KEEP = "keep"


class NsfwPolicy(StrEnum):
    """What happens to an output the upstream flags in `has_nsfw_contents`."""

    FLAG = "flag"  # stored and served as it is, flagged (WaveSpeed's own behaviour)
    BLUR = "blur"  # only an irreversibly blurred copy is stored and served
    WITHHOLD = "withhold"  # never stored nor served; the prediction says how many were withheld


def _var(env: str, default: Any = MISSING, *, ge: float | None = None, **options: Any) -> Any:
    """A setting read from the variable `env`; `ge` is its lower bound."""
    return field(default=default, metadata={"env": env, "ge": ge}, **options)


class _InvalidError(ValueError):
    """One variable's bad value: a pydantic error type and its context."""

    def __init__(self, kind: str, **ctx: Any) -> None:
        super().__init__(kind)
        self.kind, self.ctx = kind, ctx


def _text(value: object, default: str) -> str:
    if not isinstance(value, str):
        raise _InvalidError("string_type")
    return value


def _integer(value: object, default: int) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise _InvalidError("int_parsing") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidError("int_type")
    return value


def _number(value: object, default: float) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _InvalidError("float_parsing") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidError("float_type")
    return float(value)


def _choice(value: object, default: StrEnum) -> StrEnum:
    choices = type(default)
    try:
        return choices(str(value))
    except ValueError:
        names = [repr(member.value) for member in choices]
        raise _InvalidError("enum", expected=" or ".join([", ".join(names[:-1]), names[-1]])) from None


def _csv(value: object, default: list[str]) -> list[str]:
    # LORA_ALLOWLIST (allowed LoRA ids or prefixes) and CORS_ALLOWED_ORIGINS are comma-separated.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise _InvalidError("list_type")


def _parser(setting: Field[Any]) -> Callable[[Any, Any], Any]:
    """How a variable's text becomes the setting: by the type of the setting's default."""
    default = _default(setting)
    if isinstance(default, StrEnum):
        return _choice
    if isinstance(default, str):
        return _text
    if isinstance(default, float):
        return _number
    return _integer if isinstance(default, int) else _csv


def _default(setting: Field[Any]) -> Any:
    if setting.default is MISSING:
        return setting.default_factory()  # type: ignore[operator]
    return setting.default


def _invalid(errors: list[InitErrorDetails]) -> ValueError:
    # Pydantic's own error type and messages (the import is paid only for a bad setting).
    from pydantic_core import ValidationError

    return ValidationError.from_exception_data("Settings", errors)


@dataclass(frozen=True, init=False)
class Settings:
    """Every setting is read from the environment variable it names; keyword arguments (by
    variable name) win over the environment, and other names are ignored. A bad value raises
    pydantic's `ValidationError`, naming the variable.

    A dataclass rather than a pydantic model: every function reads its settings at its cold
    start, and building a model of fifty fields cost each one a few percent of boto3's import
    (the authorizer needs no pydantic at all now)."""

    # --- where things are (set by the template / local stack) ---
    table_name: str = _var("TABLE_NAME", "")
    bucket_name: str = _var("BUCKET_NAME", "")
    topic_arn: str = _var("TOPIC_ARN", "")
    state_machine_arn: str = _var("STATE_MACHINE_ARN", "")
    # Our own public base URL for `urls.get`; empty = derived from the API Gateway request.
    public_base_url: str = _var("PUBLIC_BASE_URL", "")

    # --- upstream ---
    wavespeed_base_url: str = _var("WAVESPEED_BASE_URL", "https://api.wavespeed.ai")
    wavespeed_secret_name: str = _var("WAVESPEED_SECRET_NAME", "")
    # Empty = none; never shown in the settings' repr.
    wavespeed_api_key: str = _var("WAVESPEED_API_KEY", "", repr=False)
    upstream_connect_timeout: float = _var("UPSTREAM_CONNECT_TIMEOUT", 5.0)
    upstream_read_timeout: float = _var("UPSTREAM_READ_TIMEOUT", 30.0)
    # The submit's own read timeout: with the retry budget and the connect timeout it stays below
    # API Gateway's 29 s, so a hanging upstream still gets the caller its answer (the job waits
    # for adoption, below).
    upstream_submit_read_timeout: float = _var("UPSTREAM_SUBMIT_READ_TIMEOUT", 12.0)
    # Total time budget for retrying a submit that certainly never arrived (or a 429).
    upstream_submit_retry_budget: float = _var("UPSTREAM_SUBMIT_RETRY_BUDGET", 8.0)
    # A submit that may have reached WaveSpeed (a timeout after sending, a 5xx) is never resent:
    # the job waits this long for WaveSpeed's webhook naming it and adopts that task, else it
    # ends failed with `ambiguous_submit`.
    ambiguous_submit_window_seconds: int = _var("AMBIGUOUS_SUBMIT_WINDOW_SECONDS", 600, ge=0)
    upstream_get_retries: int = _var("UPSTREAM_GET_RETRIES", 4)
    upstream_backoff_base: float = _var("UPSTREAM_BACKOFF_BASE", 0.5)
    # The account's webhook signing secret, when the operator keeps it in Secrets Manager;
    # empty = read once from WaveSpeed's `GET /api/v3/webhook/secret` (cached).
    wavespeed_webhook_secret_name: str = _var("WAVESPEED_WEBHOOK_SECRET_NAME", "")
    wavespeed_webhook_secret_cache_seconds: int = _var("WAVESPEED_WEBHOOK_SECRET_CACHE_SECONDS", 300, ge=0)

    # Secrets Manager name prefix of the per-owner webhook signing secrets.
    webhook_secret_prefix: str = _var("WEBHOOK_SECRET_PREFIX", "fluxrelay/webhook/")
    webhook_rotation_grace_seconds: int = _var("WEBHOOK_ROTATION_GRACE_SECONDS", 24 * 3600)

    # --- workflow timing ---
    # Upper end of the inference time per image: the first poll happens after this long unless
    # the upstream's push wakes the workflow earlier (it usually does).
    expected_seconds_per_image: float = _var("EXPECTED_SECONDS_PER_IMAGE", 3.0)
    poll_interval_seconds: int = _var("POLL_INTERVAL_SECONDS", 1)
    poll_max_interval_seconds: int = _var("POLL_MAX_INTERVAL_SECONDS", 10)
    job_deadline_seconds: int = _var("JOB_DEADLINE_SECONDS", 900)
    cancelled_outputs: CancelledOutputs = _var("CANCELLED_OUTPUTS", CancelledOutputs.DISCARD)
    output_url_ttl_seconds: int = _var("OUTPUT_URL_TTL_SECONDS", 3600)
    # How long a failing webhook is retried (at most an hour apart, with jitter): 24 h to 72 h.
    webhook_retry_span_seconds: int = _var("WEBHOOK_RETRY_SPAN_SECONDS", 24 * 3600, ge=0)
    webhook_retry_base_seconds: int = _var("WEBHOOK_RETRY_BASE_SECONDS", 5)
    sync_wait_seconds: float = _var("SYNC_WAIT_SECONDS", 25.0)
    job_ttl_days: int = _var("JOB_TTL_DAYS", 30)

    # --- the sweeper ---
    # A non-terminal job untouched this long whose workflow is not running is resumed; one this
    # far past its deadline is ended. Each run looks at most at `sweep_batch_size` jobs.
    sweep_grace_seconds: int = _var("SWEEP_GRACE_SECONDS", 120, ge=0)
    sweep_batch_size: int = _var("SWEEP_BATCH_SIZE", 100, ge=1)

    # --- limits (per API key; a key's own values override these defaults) ---
    # A revoked key keeps working in a warm authorizer for at most this long.
    authorizer_cache_seconds: float = _var("AUTHORIZER_CACHE_SECONDS", 60.0, ge=0)
    default_requests_per_minute: int = _var("DEFAULT_REQUESTS_PER_MINUTE", 60)
    default_images_per_day: int = _var("DEFAULT_IMAGES_PER_DAY", 1000)
    idempotency_ttl_seconds: int = _var("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)

    # Global cap on tasks running upstream at once (WaveSpeed's lowest tier allows 2); jobs over
    # it wait in `created` and are submitted by the workflow when a slot frees. 0 = no cap.
    max_concurrent_upstream_tasks: int = _var("MAX_CONCURRENT_UPSTREAM_TASKS", 10, ge=0)

    # --- policy ---
    url_policy: UrlPolicyName = _var("FLUXRELAY_URL_POLICY", UrlPolicyName.STRICT)
    lora_allowlist: list[str] = _var("LORA_ALLOWLIST", default_factory=list)
    max_output_bytes: int = _var("MAX_OUTPUT_BYTES", 25 * 1024 * 1024)
    # Browser origins allowed to call the API (CORS), comma-separated; empty = none (no CORS
    # headers, preflights are 404s). "*" allows any origin.
    cors_allowed_origins: list[str] = _var("CORS_ALLOWED_ORIGINS", default_factory=list)
    # Applied when a job's outputs are stored; a change does not touch outputs stored before it.
    nsfw_policy: NsfwPolicy = _var("NSFW_POLICY", NsfwPolicy.FLAG)

    # --- uploads and img2img by upload ---
    # Lifetime of a presigned PUT for `POST /api/v3/media/uploads`.
    upload_url_ttl_seconds: int = _var("UPLOAD_URL_TTL_SECONDS", 900)
    # Lifetime of an upload's `download_url` (presigned GET): long enough to submit and run a job.
    upload_download_ttl_seconds: int = _var("UPLOAD_DOWNLOAD_TTL_SECONDS", 2 * 3600)
    # img2img by upload: how long the job waits for its PUT (= the PUT URL's lifetime); then it
    # expires as `timeout` ("upload never arrived"), see UPLOAD_EXPIRY_STATE_MACHINE_ARN.
    upload_window_seconds: int = _var("UPLOAD_WINDOW_SECONDS", 3600)
    # Cap of an uploaded image (tickets, img2img PUTs, operator drops); at most
    # models.uploads.MAX_UPLOAD_BYTES.
    max_upload_bytes: int = _var("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
    # Multipart uploads travel inside the Lambda event (6 MB, base64 adds a third): keep well below.
    max_binary_upload_bytes: int = _var("MAX_BINARY_UPLOAD_BYTES", 4 * 1024 * 1024)
    # Inputs up to this size are decoded completely before paying; larger ones by their header.
    full_decode_max_bytes: int = _var("FULL_DECODE_MAX_BYTES", 8 * 1024 * 1024)
    # Owner of the jobs created from operator drops (img2img/drops/...).
    system_owner: str = _var("SYSTEM_OWNER", "system")
    # The upload-expiry state machine (Wait the window, then expire_upload); empty = no timer.
    upload_expiry_state_machine_arn: str = _var("UPLOAD_EXPIRY_STATE_MACHINE_ARN", "")
    # The list prices behind each prediction's `metrics.estimated_cost_usd` (JSON overrides).
    # JSON overrides of the list prices behind each prediction's `metrics.estimated_cost_usd`.
    cost_prices_json: str = _var("COST_PRICES", "")

    def __init__(self, **given: Any) -> None:
        errors: list[InitErrorDetails] = []
        for setting in fields(self):
            env = setting.metadata["env"]
            value = given.get(env, os.environ.get(env, MISSING))
            try:
                parsed = _default(setting) if value is MISSING else _parser(setting)(value, _default(setting))
                bound = setting.metadata["ge"]
                if bound is not None and parsed < bound:
                    raise _InvalidError("greater_than_equal", ge=bound)
            except _InvalidError as bad:
                errors.append({"type": bad.kind, "loc": (env,), "input": value, "ctx": bad.ctx})
                continue
            object.__setattr__(self, setting.name, parsed)
        if errors:
            raise _invalid(errors)
        if self.cost_prices_json:
            self._check_prices()

    @classmethod
    def variables(cls) -> set[str]:
        """The environment variables the settings are read from."""
        return {setting.metadata["env"] for setting in fields(cls)}

    @cached_property
    def cost_prices(self) -> PriceTable:
        """The list prices (pydantic, built at the first cost estimate; a set `COST_PRICES` is
        checked when the settings are read)."""
        from fluxrelay.domain.pricing import PriceTable

        return PriceTable.model_validate_json(self.cost_prices_json or "{}")

    def _check_prices(self) -> None:
        from pydantic import ValidationError

        try:
            self.cost_prices  # noqa: B018 - reading it validates it
        except ValidationError as exc:
            errors: list[InitErrorDetails] = [
                {
                    "type": e["type"],
                    "loc": ("COST_PRICES", *e["loc"]),
                    "input": e["input"],
                    "ctx": e.get("ctx", {}),
                }
                for e in exc.errors()
            ]
            raise _invalid(errors) from None

    def first_poll_seconds(self, num_images: int) -> int:
        """The wait before a submitted job's first result check: its expected inference time."""
        return math.ceil(self.expected_seconds_per_image * num_images)

    def validation_context(self) -> dict[str, object]:
        """The pydantic validation context of request models: the URL policy and LoRA allowlist
        of this deployment (models never read the environment themselves)."""
        return {"url_policy": self.url_policy.value, "lora_allowlist": list(self.lora_allowlist)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this container, read once (tests call `get_settings.cache_clear()`)."""
    return Settings()
