"""History: the owner index read by both job stores (one contract for the fake and DynamoDB on
moto), the two paging styles of the history service, and the filters' 400 messages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
from fluxrelay.domain.errors import InvalidRequestError
from fluxrelay.domain.history import HistoryService, JobFilter, decode_cursor, encode_cursor
from fluxrelay.domain.jobs import JobItem, JobStatus, new_job_id
from fluxrelay.domain.ports import JobPage, JobPosition, JobStore
from fluxrelay.models.history import PredictionListQuery, PredictionListRequest
from fluxrelay.models.wire import describe_validation_error
from tests.fakes.memory import MemoryJobStore
from tests.unit.conftest import TABLE

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[JobStore]:
    if request.param == "memory":
        yield MemoryJobStore()
    else:
        yield DynamoJobStore(TABLE, client=request.getfixturevalue("dynamodb"))


def add(store: JobStore, owner: str, minute: int, status: JobStatus = JobStatus.COMPLETED) -> JobItem:
    job = JobItem(
        job_id=new_job_id(),
        owner=owner,
        request={"prompt": "x"},
        status=status,
        created_at=T0 + timedelta(minutes=minute),
    )
    store.create(job)
    return job


def read_all(store: JobStore, owner: str, wanted: JobFilter, limit: int) -> list[str]:
    ids: list[str] = []
    after: JobPosition | None = None
    for _ in range(100):
        page = store.owned_page(owner, wanted, limit=limit, after=after)
        assert len(page.items) <= limit
        ids += [job.job_id for job in page.items]
        if page.next is None:
            return ids
        after = page.next
    raise AssertionError("the pages never ended")


# --------------------------------------------------------------------------- the store contract
def test_an_owners_pages_hold_each_of_their_jobs_once_newest_first_and_nobody_elses(
    store: JobStore,
) -> None:
    mine = [add(store, "alice", minute) for minute in range(7)]
    add(store, "bob", 3)

    ids = read_all(store, "alice", JobFilter(), limit=3)

    assert ids == [job.job_id for job in reversed(mine)]
    assert store.count_owned("alice", JobFilter()) == 7
    assert store.count_owned("bob", JobFilter()) == 1
    assert store.count_owned("carol", JobFilter()) == 0


def test_a_full_last_page_says_there_is_nothing_after_it(store: JobStore) -> None:
    for minute in range(3):
        add(store, "alice", minute)

    page = store.owned_page("alice", JobFilter(), limit=3, after=None)

    assert len(page.items) == 3
    assert page.next is None


def test_status_and_time_filters_select_within_the_owners_jobs(store: JobStore) -> None:
    jobs = [add(store, "alice", m, JobStatus.FAILED if m % 2 else JobStatus.COMPLETED) for m in range(6)]
    add(store, "bob", 1, JobStatus.FAILED)
    failed = JobFilter(statuses=frozenset({JobStatus.FAILED}))
    window = JobFilter(created_after=T0 + timedelta(minutes=1), created_before=T0 + timedelta(minutes=3))

    assert read_all(store, "alice", failed, limit=2) == [jobs[5].job_id, jobs[3].job_id, jobs[1].job_id]
    # Both bounds are inclusive.
    assert read_all(store, "alice", window, limit=10) == [j.job_id for j in (jobs[3], jobs[2], jobs[1])]
    assert store.count_owned("alice", failed) == 3
    assert store.count_owned("alice", JobFilter(created_after=T0 + timedelta(minutes=4))) == 2
    assert store.count_owned("alice", JobFilter(created_before=T0)) == 1


def test_a_filter_that_wants_no_status_finds_nothing(store: JobStore) -> None:
    add(store, "alice", 0)
    nothing = JobFilter(statuses=frozenset())

    assert store.owned_page("alice", nothing, limit=10, after=None) == JobPage([], None)
    assert store.count_owned("alice", nothing) == 0


def test_a_sparse_filter_still_finds_every_match_across_pages(store: JobStore) -> None:
    oldest = add(store, "alice", 0, JobStatus.TIMEOUT)
    for minute in range(1, 25):
        add(store, "alice", minute)

    found = read_all(store, "alice", JobFilter(statuses=frozenset({JobStatus.TIMEOUT})), limit=1)

    assert found == [oldest.job_id]


def test_a_position_is_always_read_within_the_callers_own_index(store: JobStore) -> None:
    alices = add(store, "alice", 0)
    bobs = add(store, "bob", 5)
    add(store, "bob", 1)
    # A position taken from bob's index, used by alice: it only places her in her own index.
    from_bob = store.owned_page("bob", JobFilter(), limit=1, after=None).next
    assert from_bob is not None
    assert from_bob.job_id == bobs.job_id

    page = store.owned_page("alice", JobFilter(), limit=10, after=from_bob)

    assert [job.job_id for job in page.items] == [alices.job_id]


# --------------------------------------------------------------------------- the service
@pytest.fixture
def history() -> tuple[HistoryService, MemoryJobStore]:
    jobs = MemoryJobStore()
    return HistoryService(jobs), jobs


def test_the_page_call_answers_the_total_and_the_jobs_of_that_page(
    history: tuple[HistoryService, MemoryJobStore],
) -> None:
    service, jobs = history
    made = [add(jobs, "alice", minute) for minute in range(5)]
    add(jobs, "alice", 9, JobStatus.FAILED)

    total, items = service.page("alice", PredictionListRequest(page=2, page_size=2, status="completed"))

    assert total == 5
    assert [j.job_id for j in items] == [made[2].job_id, made[1].job_id]
    total, items = service.page("alice", PredictionListRequest(page=4, page_size=2))
    assert (total, items) == (6, [])


def test_the_page_call_for_another_model_finds_nothing(
    history: tuple[HistoryService, MemoryJobStore],
) -> None:
    service, jobs = history
    add(jobs, "alice", 0)

    assert service.page("alice", PredictionListRequest(model="wavespeed-ai/flux-dev")) == (0, [])
    assert service.page("alice", PredictionListRequest(model="wavespeed-ai/flux-schnell-lora"))[0] == 1


def test_cursors_page_through_everything_and_end_with_none(
    history: tuple[HistoryService, MemoryJobStore],
) -> None:
    service, jobs = history
    made = [add(jobs, "alice", minute) for minute in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        items, cursor = service.listing("alice", PredictionListQuery(limit=2, cursor=cursor))
        seen += [job.job_id for job in items]
        if cursor is None:
            break

    assert seen == [job.job_id for job in reversed(made)]


def test_a_cursor_round_trips_and_anything_else_is_refused() -> None:
    position = JobPosition(created_at="2026-12-01T08:30:00.123456Z", job_id="a" * 32)
    assert decode_cursor(encode_cursor(position)) == position

    for forged in ("", "not-a-cursor", encode_cursor(position)[:-3], "WyJ4IiwieSJd", "bnVsbA"):
        with pytest.raises(InvalidRequestError, match="cursor must be the next_cursor"):
            decode_cursor(forged)


# --------------------------------------------------------------------------- filters
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"page": 0}, "page must be a whole number of at least 1"),
        ({"page": "two"}, "page must be a whole number of at least 1"),
        ({"page_size": 101}, "page_size must be a whole number from 1 to 100"),
        ({"page_size": 0}, "page_size must be a whole number from 1 to 100"),
        ({"page": 60, "page_size": 100}, "page_size times page must be at most 5000"),
        ({"status": "done"}, "status must be one of created, processing"),
        ({"created_after": "yesterday"}, "created_after must be an ISO 8601 date or date-time"),
        (
            {"created_after": "2026-12-02", "created_before": "2026-12-01"},
            "created_before must not be earlier than created_after",
        ),
        ({"model": 7}, "model must be a model id"),
        ({"pages": 1}, "unknown field 'pages'"),
    ],
)
def test_a_bad_page_request_names_the_field_and_its_rule(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PredictionListRequest.model_validate(body)
    assert message in describe_validation_error(caught.value)


def test_null_filters_mean_any_and_times_without_an_offset_are_utc() -> None:
    wavespeed_default = {
        "page": 1,
        "page_size": 100,
        "model": None,
        "status": None,
        "created_after": "2026-12-01T08:30:00",
        "created_before": None,
    }
    request = PredictionListRequest.model_validate(wavespeed_default)

    assert request.created_after == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert request.status is None
    with pytest.raises(ValidationError) as caught:
        PredictionListQuery.model_validate({"limit": "0"})
    assert "limit must be a whole number from 1 to 100" in describe_validation_error(caught.value)
