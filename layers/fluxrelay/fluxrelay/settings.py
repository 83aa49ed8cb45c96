"""Settings: one validated model, read once per container from the environment.

The template sets these variables from its Parameters; the local stack sets the same names.
Secrets are *not* settings: the WaveSpeed key comes from Secrets Manager (`wavespeed_secret_name`)
in the cloud, and only on a developer's machine from `WAVESPEED_API_KEY`.
"""

from __future__ import annotations

import json
import math
import os
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from fluxrelay.domain.usage import PriceTable


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


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseModel):
    """Every field is read from the environment variable its alias names; keyword arguments (by
    alias) win over the environment. A plain pydantic model rather than pydantic-settings: reading
    variables is all it needs here, and importing pydantic-settings cost every function's cold
    start about a sixth of boto3's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # --- where things are (set by the template / local stack) ---
    table_name: str = Field("", validation_alias="TABLE_NAME")
    bucket_name: str = Field("", validation_alias="BUCKET_NAME")
    topic_arn: str = Field("", validation_alias="TOPIC_ARN")
    state_machine_arn: str = Field("", validation_alias="STATE_MACHINE_ARN")
    # Our own public base URL for `urls.get`; empty = derived from the API Gateway request.
    public_base_url: str = Field("", validation_alias="PUBLIC_BASE_URL")

    # --- upstream ---
    wavespeed_base_url: str = Field("https://api.wavespeed.ai", validation_alias="WAVESPEED_BASE_URL")
    wavespeed_secret_name: str = Field("", validation_alias="WAVESPEED_SECRET_NAME")
    wavespeed_api_key: SecretStr | None = Field(None, validation_alias="WAVESPEED_API_KEY")
    upstream_connect_timeout: float = Field(5.0, validation_alias="UPSTREAM_CONNECT_TIMEOUT")
    upstream_read_timeout: float = Field(30.0, validation_alias="UPSTREAM_READ_TIMEOUT")
    # The submit's own read timeout: with the retry budget and the connect timeout it stays below
    # API Gateway's 29 s, so a hanging upstream still gets the caller its answer (the job waits
    # for adoption, below).
    upstream_submit_read_timeout: float = Field(12.0, validation_alias="UPSTREAM_SUBMIT_READ_TIMEOUT")
    # Total time budget for retrying a submit that certainly never arrived (or a 429).
    upstream_submit_retry_budget: float = Field(8.0, validation_alias="UPSTREAM_SUBMIT_RETRY_BUDGET")
    # A submit that may have reached WaveSpeed (a timeout after sending, a 5xx) is never resent:
    # the job waits this long for WaveSpeed's webhook naming it and adopts that task, else it
    # ends failed with `ambiguous_submit`.
    ambiguous_submit_window_seconds: int = Field(
        600, ge=0, validation_alias="AMBIGUOUS_SUBMIT_WINDOW_SECONDS"
    )
    upstream_get_retries: int = Field(4, validation_alias="UPSTREAM_GET_RETRIES")
    upstream_backoff_base: float = Field(0.5, validation_alias="UPSTREAM_BACKOFF_BASE")
    # The account's webhook signing secret, when the operator keeps it in Secrets Manager;
    # empty = read once from WaveSpeed's `GET /api/v3/webhook/secret` (cached).
    wavespeed_webhook_secret_name: str = Field("", validation_alias="WAVESPEED_WEBHOOK_SECRET_NAME")
    wavespeed_webhook_secret_cache_seconds: int = Field(
        300, ge=0, validation_alias="WAVESPEED_WEBHOOK_SECRET_CACHE_SECONDS"
    )

    # Secrets Manager name prefix of the per-owner webhook signing secrets.
    webhook_secret_prefix: str = Field("fluxrelay/webhook/", validation_alias="WEBHOOK_SECRET_PREFIX")
    webhook_rotation_grace_seconds: int = Field(24 * 3600, validation_alias="WEBHOOK_ROTATION_GRACE_SECONDS")

    # --- workflow timing ---
    # Upper end of the inference time per image: the first poll happens after this long unless
    # the upstream's push wakes the workflow earlier (it usually does).
    expected_seconds_per_image: float = Field(3.0, validation_alias="EXPECTED_SECONDS_PER_IMAGE")
    poll_interval_seconds: int = Field(1, validation_alias="POLL_INTERVAL_SECONDS")
    poll_max_interval_seconds: int = Field(10, validation_alias="POLL_MAX_INTERVAL_SECONDS")
    job_deadline_seconds: int = Field(900, validation_alias="JOB_DEADLINE_SECONDS")
    cancelled_outputs: CancelledOutputs = Field(
        CancelledOutputs.DISCARD, validation_alias="CANCELLED_OUTPUTS"
    )
    output_url_ttl_seconds: int = Field(3600, validation_alias="OUTPUT_URL_TTL_SECONDS")
    # How long a failing webhook is retried (at most an hour apart, with jitter): 24 h to 72 h.
    webhook_retry_span_seconds: int = Field(24 * 3600, ge=0, validation_alias="WEBHOOK_RETRY_SPAN_SECONDS")
    webhook_retry_base_seconds: int = Field(5, validation_alias="WEBHOOK_RETRY_BASE_SECONDS")
    sync_wait_seconds: float = Field(25.0, validation_alias="SYNC_WAIT_SECONDS")
    job_ttl_days: int = Field(30, validation_alias="JOB_TTL_DAYS")

    # --- the sweeper ---
    # A non-terminal job untouched this long whose workflow is not running is resumed; one this
    # far past its deadline is ended. Each run looks at most at `sweep_batch_size` jobs.
    sweep_grace_seconds: int = Field(120, ge=0, validation_alias="SWEEP_GRACE_SECONDS")
    sweep_batch_size: int = Field(100, ge=1, validation_alias="SWEEP_BATCH_SIZE")

    # --- limits (per API key; a key's own values override these defaults) ---
    # A revoked key keeps working in a warm authorizer for at most this long.
    authorizer_cache_seconds: float = Field(60.0, ge=0, validation_alias="AUTHORIZER_CACHE_SECONDS")
    default_requests_per_minute: int = Field(60, validation_alias="DEFAULT_REQUESTS_PER_MINUTE")
    default_images_per_day: int = Field(1000, validation_alias="DEFAULT_IMAGES_PER_DAY")
    idempotency_ttl_seconds: int = Field(24 * 3600, validation_alias="IDEMPOTENCY_TTL_SECONDS")

    # Global cap on tasks running upstream at once (WaveSpeed's lowest tier allows 2); jobs over
    # it wait in `created` and are submitted by the workflow when a slot frees. 0 = no cap.
    max_concurrent_upstream_tasks: int = Field(10, ge=0, validation_alias="MAX_CONCURRENT_UPSTREAM_TASKS")

    # --- policy ---
    url_policy: UrlPolicyName = Field(UrlPolicyName.STRICT, validation_alias="FLUXRELAY_URL_POLICY")
    lora_allowlist: list[str] = Field(default_factory=list, validation_alias="LORA_ALLOWLIST")
    max_output_bytes: int = Field(25 * 1024 * 1024, validation_alias="MAX_OUTPUT_BYTES")
    # Browser origins allowed to call the API (CORS), comma-separated; empty = none (no CORS
    # headers, preflights are 404s). "*" allows any origin.
    cors_allowed_origins: list[str] = Field(default_factory=list, validation_alias="CORS_ALLOWED_ORIGINS")
    # Applied when a job's outputs are stored; a change does not touch outputs stored before it.
    nsfw_policy: NsfwPolicy = Field(NsfwPolicy.FLAG, validation_alias="NSFW_POLICY")

    # --- uploads and img2img by upload ---
    # Lifetime of a presigned PUT for `POST /api/v3/media/uploads`.
    upload_url_ttl_seconds: int = Field(900, validation_alias="UPLOAD_URL_TTL_SECONDS")
    # Lifetime of an upload's `download_url` (presigned GET): long enough to submit and run a job.
    upload_download_ttl_seconds: int = Field(2 * 3600, validation_alias="UPLOAD_DOWNLOAD_TTL_SECONDS")
    # img2img by upload: how long the job waits for its PUT (= the PUT URL's lifetime); then it
    # expires as `timeout` ("upload never arrived"), see UPLOAD_EXPIRY_STATE_MACHINE_ARN.
    upload_window_seconds: int = Field(3600, validation_alias="UPLOAD_WINDOW_SECONDS")
    # Cap of an uploaded image (tickets, img2img PUTs, operator drops); at most
    # models.uploads.MAX_UPLOAD_BYTES.
    max_upload_bytes: int = Field(20 * 1024 * 1024, validation_alias="MAX_UPLOAD_BYTES")
    # Multipart uploads travel inside the Lambda event (6 MB, base64 adds a third): keep well below.
    max_binary_upload_bytes: int = Field(4 * 1024 * 1024, validation_alias="MAX_BINARY_UPLOAD_BYTES")
    # Inputs up to this size are decoded completely before paying; larger ones by their header.
    full_decode_max_bytes: int = Field(8 * 1024 * 1024, validation_alias="FULL_DECODE_MAX_BYTES")
    # Owner of the jobs created from operator drops (img2img/drops/...).
    system_owner: str = Field("system", validation_alias="SYSTEM_OWNER")
    # The upload-expiry state machine (Wait the window, then expire_upload); empty = no timer.
    upload_expiry_state_machine_arn: str = Field("", validation_alias="UPLOAD_EXPIRY_STATE_MACHINE_ARN")
    # The list prices behind each prediction's `metrics.estimated_cost_usd` (JSON overrides).
    cost_prices: PriceTable = Field(default_factory=PriceTable, validation_alias="COST_PRICES")

    def first_poll_seconds(self, num_images: int) -> int:
        """The wait before a submitted job's first result check: its expected inference time."""
        return math.ceil(self.expected_seconds_per_image * num_images)

    def validation_context(self) -> dict[str, object]:
        """The pydantic validation context of request models: the URL policy and LoRA allowlist
        of this deployment (models never read the environment themselves)."""
        return {"url_policy": self.url_policy.value, "lora_allowlist": list(self.lora_allowlist)}

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        given = dict(data) if isinstance(data, dict) else {}
        aliases = (f.validation_alias for f in cls.model_fields.values())
        found = {a: os.environ[a] for a in aliases if isinstance(a, str) and a in os.environ}
        return {**found, **given}

    @field_validator("cost_prices", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        # A structured variable holds JSON (an empty one means the defaults).
        return json.loads(value or "{}") if isinstance(value, str) else value

    @field_validator("lora_allowlist", "cors_allowed_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        # LORA_ALLOWLIST (allowed LoRA ids or prefixes) and CORS_ALLOWED_ORIGINS are comma-separated.
        return _split_csv(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this container, read once (tests call `get_settings.cache_clear()`)."""
    return Settings()
