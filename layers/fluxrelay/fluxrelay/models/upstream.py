"""WaveSpeed's prediction object as the upstream sends it (polling answers and webhooks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

COMPLETED_STATUSES = frozenset({"completed"})
# The server enum has cancelled/timeout; the official SDK also treats deleted as terminal.
FAILED_STATUSES = frozenset({"failed", "cancelled", "timeout", "deleted"})


class UpstreamTimings(BaseModel):
    model_config = ConfigDict(extra="allow")

    inference: int | float | None = None


class UpstreamPrediction(BaseModel):
    """WaveSpeed's prediction object (the `data` of the envelope, or a webhook body).

    Lenient on purpose (extra="allow", nulls become empty values): this mirrors a third party's
    payload, and a new upstream field must never break polling.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    model: str = ""
    # Empty defaults are plain `[]`/`{}` (pydantic copies them per instance), as in the job item.
    outputs: list[str] = []
    urls: dict[str, str] = {}
    has_nsfw_contents: list[bool] = []
    status: str
    created_at: str = ""
    error: str = ""
    execution_time: int | float | None = Field(None, alias="executionTime")
    timings: UpstreamTimings | None = None

    @field_validator("outputs", "has_nsfw_contents", "urls", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return {} if info.field_name == "urls" else []
        return value

    @field_validator("error", "created_at", "model", mode="before")
    @classmethod
    def _none_is_blank(cls, value: object) -> object:
        return "" if value is None else value

    @property
    def is_completed(self) -> bool:
        return self.status in COMPLETED_STATUSES

    @property
    def is_failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def is_terminal(self) -> bool:
        # Any status we do not know (a new upstream state) means "keep polling".
        return self.is_completed or self.is_failed

    @property
    def inference_ms(self) -> int | None:
        value = self.timings.inference if self.timings is not None else None
        return int(value) if value is not None else None
