"""History: a caller's own jobs, newest first, read from the owner index (never a table scan).

Two ways to page: WaveSpeed's `page`/`page_size` with a `total` (each call counts the matching
jobs and skips the earlier pages, so its depth is capped), and an opaque cursor whose cost does
not grow with the depth. The owner always comes from the caller's key, never from the cursor, so
no cursor can reach another owner's jobs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.domain.jobs import JobItem, JobStatus
from fluxrelay.domain.ports import JobFilter, JobPosition, JobStore
from fluxrelay.models.history import HistoryFilters, PredictionListQuery, PredictionListRequest
from fluxrelay.models.wire import MODEL_ID


def job_filter(filters: HistoryFilters) -> JobFilter:
    statuses = None
    if filters.status is not None:
        # `created` is how a WaveSpeed client sees a job waiting for its upload, too.
        statuses = frozenset(s for s in JobStatus if s.public == filters.status)
    return JobFilter(statuses, filters.created_after, filters.created_before)


_CURSOR_ERROR = "cursor must be the next_cursor of an earlier answer (start again without it)"
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_STORED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]{8,15}Z")


def encode_cursor(position: JobPosition) -> str:
    raw = json.dumps([position.created_at, position.job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> JobPosition:
    """The position a cursor names; InvalidRequestError for anything this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidRequestError(_CURSOR_ERROR) from None
    if not (
        isinstance(created_at, str)
        and isinstance(job_id, str)
        and _STORED_TIME.fullmatch(created_at)
        and _JOB_ID.fullmatch(job_id)
    ):
        raise InvalidRequestError(_CURSOR_ERROR)
    return JobPosition(created_at, job_id)


# How many jobs one read of the index asks for while skipping to a page.
_SKIP_BATCH = 100


@dataclass
class HistoryService:
    store: JobStore

    def page(self, owner: str, request: PredictionListRequest) -> tuple[int, list[JobItem]]:
        """WaveSpeed's list call: the total of matching jobs and the jobs of page `request.page`."""
        if request.model not in (None, MODEL_ID):
            return 0, []  # this API runs one model: no job of another one exists
        wanted = job_filter(request)
        total = self.store.count_owned(owner, wanted)
        skip = (request.page - 1) * request.page_size
        items: list[JobItem] = []
        seen = 0
        position: JobPosition | None = None
        while seen < skip + request.page_size:
            batch = self.store.owned_page(
                owner, wanted, limit=min(_SKIP_BATCH, skip + request.page_size - seen), after=position
            )
            items.extend(batch.items[max(0, skip - seen) :])
            seen += len(batch.items)
            if batch.next is None:
                break
            position = batch.next
        return total, items[: request.page_size]

    def listing(self, owner: str, query: PredictionListQuery) -> tuple[list[JobItem], str | None]:
        """A page of at most `query.limit` jobs after `query.cursor`, and the next cursor."""
        after = decode_cursor(query.cursor) if query.cursor else None
        found = self.store.owned_page(owner, job_filter(query), limit=query.limit, after=after)
        return found.items, encode_cursor(found.next) if found.next else None
