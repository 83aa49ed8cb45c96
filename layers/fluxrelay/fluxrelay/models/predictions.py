"""WaveSpeed's prediction object, as the API answers it and as webhooks deliver it.

Apart from `wire.py` (the submit body and its rules, the envelopes): notify builds a prediction
for every webhook and never reads a submit body, so it does not build those models at cold start.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from fluxrelay.models import MODEL_ID
from fluxrelay.models.types import UtcDatetime


class PredictionUrls(BaseModel):
    get: str


class Timings(BaseModel):
    inference: int = 0  # ms


class WithheldOutputs(BaseModel):
    """Outputs this service does not serve (fluxrelay's addition; WaveSpeed clients ignore it)."""

    count: int
    reason: str


class PredictionMetrics(BaseModel):
    """What the job cost (fluxrelay's addition, like Replicate's `metrics`; WaveSpeed clients
    ignore it). Counted from the job's own invocations; the caller's result polls and the
    authorizer are not included."""

    predict_time: float = Field(description="Upstream inference time, seconds.")
    total_time: float | None = Field(None, description="Submit to end, seconds (None while running).")
    state_transitions: int = Field(description="Step Functions state transitions.")
    lambda_invocations: int
    lambda_ms: int = Field(description="Lambda run time, milliseconds.")
    upstream_polls: int = Field(description="Result requests sent to WaveSpeed.")
    images_stored: int
    bytes_stored: int
    estimated_cost_usd: float = Field(
        description="Orchestration cost in USD at the configured list prices; WaveSpeed's price excluded."
    )


class Prediction(BaseModel):
    """WaveSpeed's prediction object (result GET, submit answer, webhook body).

    Unknown keys are ignored, so the same model parses upstream answers (webhooks sometimes add
    `input`). `code` is only set for the sync-mode timeout shape (5004) and is omitted otherwise;
    `error_type` and `retryable` are our additions, set when the job has an error.
    Serialise with `model_dump(mode="json", by_alias=True, exclude_none=True)`.
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    model: str = MODEL_ID
    # Plain defaults, which pydantic copies for each instance: a `default_factory=list` made it
    # read the builtin's signature, which Python parses from text, at each cold start.
    outputs: list[str] = []
    urls: PredictionUrls
    has_nsfw_contents: list[bool] = []
    status: str
    created_at: UtcDatetime
    error: str = ""
    execution_time: int = Field(0, alias="executionTime")  # ms
    timings: Timings = Timings()
    # Omitted unless set, however the model is dumped (Powertools re-serialises responses).
    code: int | None = Field(None, exclude_if=lambda v: v is None)
    metrics: PredictionMetrics | None = Field(None, exclude_if=lambda v: v is None)
    # Ours, beside WaveSpeed's `error` text (its clients ignore unknown fields): the kind of
    # error, so a client can branch without parsing text, and whether submitting the same
    # request again may succeed. Only present when the job has an error.
    error_type: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Why the job ended without images, e.g. timeout, cancelled, upstream_failed.",
    )
    retryable: bool | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Whether the same request may succeed if sent again.",
    )
    withheld: WithheldOutputs | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Flagged outputs this service did not serve, and why.",
    )
