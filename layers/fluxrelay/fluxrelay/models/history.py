"""History wire models: WaveSpeed's list call (`POST /api/v3/predictions`, page and total) and our
cursor listing (`GET /api/v3/predictions`), with the filters both share.

Filters follow WaveSpeed's names; every rule is worded like the submit body's rules, so a bad
filter is a 400 whose message names the field ("page_size must be a whole number from 1 to 100").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator

from fluxrelay.models.wire import Envelope, Prediction, _rule, _violation, _whole_number

MAX_PAGE_SIZE = 100
# The page call reads and skips every item before the page it answers (DynamoDB has no offset):
# deeper than this, the cursor listing is the way, and its cost does not grow with the depth.
MAX_PAGE_DEPTH = 5000
MAX_CURSOR_LENGTH = 512

PublicStatus = Literal["created", "processing", "completed", "failed", "timeout", "cancelled"]
_STATUS_RULE = "must be one of created, processing, completed, failed, timeout, cancelled"
_TIME_RULE = (
    "must be an ISO 8601 date or date-time, e.g. 2026-12-01 or 2026-12-01T08:30:00Z (UTC if no offset)"
)


def _as_utc(value: datetime | None) -> datetime | None:
    # A date-time without an offset is read as UTC (the zone of every time this API answers).
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


FilterTime = Annotated[datetime | None, _rule(_TIME_RULE), AfterValidator(_as_utc)]
StatusFilter = Annotated[PublicStatus | None, _rule(_STATUS_RULE)]
PageSize = Annotated[
    int, Field(ge=1, le=MAX_PAGE_SIZE), _whole_number(f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
]


class HistoryFilters(BaseModel):
    """The filters of both history calls; absent or null means "any"."""

    model_config = ConfigDict(extra="forbid")

    status: StatusFilter = Field(None, description="Only jobs in this status.")
    created_after: FilterTime = Field(None, description="Only jobs created at or after this time.")
    created_before: FilterTime = Field(None, description="Only jobs created at or before this time.")

    @field_validator("created_before")
    @classmethod
    def _not_before_after(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        after = info.data.get("created_after")
        if value is not None and after is not None and value < after:
            raise _violation("must not be earlier than created_after")
        return value


class PredictionListRequest(HistoryFilters):
    """Body of `POST /api/v3/predictions` (WaveSpeed's list call), newest first."""

    page: Annotated[int, Field(ge=1), _whole_number("must be a whole number of at least 1")] = 1
    page_size: PageSize = 20
    model: Annotated[
        StrictStr | None, Field(max_length=200), _rule("must be a model id of at most 200 characters")
    ] = Field(None, description="Only jobs of this model (this API runs one).")

    @field_validator("page_size")
    @classmethod
    def _not_too_deep(cls, value: int, info: ValidationInfo) -> int:
        page = info.data.get("page")
        if page is not None and page * value > MAX_PAGE_DEPTH:
            raise _violation(
                f"times page must be at most {MAX_PAGE_DEPTH} (here {page} * {value}); "
                "read deeper history with GET /api/v3/predictions and its cursor"
            )
        return value


class PredictionListQuery(HistoryFilters):
    """Query of `GET /api/v3/predictions`: a page of at most `limit` jobs, newest first."""

    limit: PageSize = 20
    cursor: Annotated[
        StrictStr | None,
        Field(max_length=MAX_CURSOR_LENGTH),
        _rule("must be the next_cursor of an earlier answer"),
    ] = Field(None, description="The `next_cursor` of the previous page; absent for the first page.")


class PredictionPage(BaseModel):
    """Answer of `POST /api/v3/predictions`: WaveSpeed's `{page, total, items}`."""

    page: int
    total: int
    items: list[Prediction]


class PredictionCursorPage(BaseModel):
    """Answer of `GET /api/v3/predictions`: `next_cursor` is null on the last page."""

    items: list[Prediction]
    next_cursor: str | None = None


class PredictionPageEnvelope(Envelope[PredictionPage]):
    pass


class PredictionCursorPageEnvelope(Envelope[PredictionCursorPage]):
    pass
