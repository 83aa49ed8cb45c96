"""One set of cases for each port with an in-memory fake and a DynamoDB adapter: the fake the
domain tests use and the adapter the functions use (on moto) must answer every case alike, so a
fake cannot drift from the real thing unnoticed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
from fluxrelay.adapters.dynamo.slots import DynamoSlotPool
from fluxrelay.domain.errors import ConflictError, NotFoundError
from fluxrelay.domain.jobs import (
    JobError,
    JobItem,
    JobStatus,
    OutputItem,
    WebhookAttempt,
    WebhookState,
    allowed_sources,
    new_job_id,
)
from fluxrelay.domain.ports import JobStore, SlotPool
from fluxrelay.domain.usage import JobUsage
from tests.fakes.memory import MemoryJobStore, MemorySlots
from tests.unit.conftest import TABLE

# Long before any test runs: a write that refreshes `updated_at` moves it past this.
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    return DynamoJobStore(TABLE, client=request.getfixturevalue("dynamodb"))


@pytest.fixture(params=["memory", "dynamodb"])
def slot_pool(request: pytest.FixtureRequest) -> Callable[[int], SlotPool]:
    if request.param == "memory":
        return MemorySlots
    client = request.getfixturevalue("dynamodb")
    return lambda capacity: DynamoSlotPool(TABLE, capacity, client=client)


def stored(store: JobStore, status: JobStatus = JobStatus.CREATED, **fields: object) -> JobItem:
    job = JobItem.model_validate(
        {
            "job_id": new_job_id(),
            "owner": "alice",
            "request": {"prompt": "a fox", "num_images": 2},
            "status": status,
            "created_at": LONG_AGO,
            "updated_at": LONG_AGO,
            **fields,
        }
    )
    store.create(job)
    return job


def read(store: JobStore, job_id: str) -> JobItem:
    job = store.get(job_id)
    assert job is not None
    return job


# --- JobStore ---------------------------------------------------------------------------
def test_a_created_job_reads_back_as_written_and_an_unknown_one_is_none(store: JobStore) -> None:
    job = stored(store)

    assert store.get(job.job_id) == job
    assert store.get(new_job_id()) is None


def test_creating_an_existing_job_id_is_a_conflict(store: JobStore) -> None:
    job = stored(store)

    with pytest.raises(ConflictError):
        store.create(job)


def test_a_status_change_succeeds_exactly_when_the_rules_allow_it(store: JobStore) -> None:
    for source in JobStatus:
        for target in JobStatus:
            job = stored(store, source)

            moved = store.transition(job.job_id, target)

            allowed = source in allowed_sources(target)
            assert (moved is not None) is allowed, f"{source} -> {target}"
            assert read(store, job.job_id).status is (target if allowed else source)


def test_a_transition_writes_its_fields_and_updated_at_with_the_status(store: JobStore) -> None:
    job = stored(store)
    output = OutputItem(key="outputs/x/0.jpeg", content_type="image/jpeg", size=3, width=1, height=1)

    done = store.transition(job.job_id, JobStatus.COMPLETED, outputs=[output], polls=3)

    assert done is not None
    assert (done.status, done.outputs, done.polls) == (JobStatus.COMPLETED, [output], 3)
    assert done.updated_at > LONG_AGO
    assert read(store, job.job_id) == done


def test_a_refused_transition_writes_none_of_its_fields(store: JobStore) -> None:
    job = stored(store, JobStatus.COMPLETED)

    refused = store.transition(job.job_id, JobStatus.FAILED, error=JobError(type="late", message="x"))

    assert refused is None
    assert read(store, job.job_id) == job
    assert store.transition(new_job_id(), JobStatus.PROCESSING) is None


def test_update_sets_fields_keeps_the_status_and_refreshes_updated_at(store: JobStore) -> None:
    job = stored(store)

    updated = store.update(job.job_id, polls=2, upstream_id="a" * 32)

    assert (updated.status, updated.polls, updated.upstream_id) == (JobStatus.CREATED, 2, "a" * 32)
    assert updated.updated_at > LONG_AGO
    assert read(store, job.job_id) == updated


def test_updating_an_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(NotFoundError):
        store.update(new_job_id(), polls=1)


def test_a_dispatch_claim_is_taken_once_again_after_it_is_cleared_and_never_on_an_ended_job(
    store: JobStore,
) -> None:
    job = stored(store)
    at = LONG_AGO + timedelta(seconds=1)

    assert store.claim(job.job_id, "dispatched_at", at) is True
    assert store.claim(job.job_id, "dispatched_at", at) is False
    assert read(store, job.job_id).dispatched_at == at
    store.update(job.job_id, dispatched_at=None)
    assert store.claim(job.job_id, "dispatched_at", at) is True

    ended = stored(store, JobStatus.CANCELLED)
    assert store.claim(ended.job_id, "dispatched_at", at) is False
    assert store.claim(new_job_id(), "dispatched_at", at) is False


def test_a_resume_claim_holds_only_for_the_count_last_seen(store: JobStore) -> None:
    job = stored(store)

    assert store.claim_resume(job.job_id, 0) is True
    assert store.claim_resume(job.job_id, 0) is False
    assert read(store, job.job_id).resumes == 1
    assert store.claim_resume(job.job_id, 1) is True
    assert store.claim_resume(new_job_id(), 0) is False


def test_webhook_state_is_written_only_over_the_attempt_count_it_was_read_at(store: JobStore) -> None:
    job = stored(store, webhook=WebhookState(url="https://hooks.example/x"))
    sent = WebhookAttempt(
        number=1, at=job.created_at, trigger="workflow", status=503, latency_ms=12, outcome="will_retry"
    )
    first = WebhookState(url="https://hooks.example/x").with_attempt(sent)

    written = store.update_webhook(job.job_id, first, expected_attempts=0)

    assert written is not None
    assert (written.webhook, written.updated_at > LONG_AGO) == (first, True)
    # A second writer that read the state before that attempt loses, and nothing changes.
    assert (
        store.update_webhook(job.job_id, WebhookState(url="https://hooks.example/x"), expected_attempts=0)
        is None
    )
    assert read(store, job.job_id).webhook == first
    assert store.update_webhook(stored(store).job_id, first, expected_attempts=0) is None  # no webhook


def test_usage_is_only_ever_added_to_and_survives_status_writes(store: JobStore) -> None:
    job = stored(store)

    store.add_usage(job.job_id, JobUsage(lambda_invocations=1, lambda_ms=40, lambda_mb_ms=40 * 512))
    store.transition(job.job_id, JobStatus.PROCESSING, polls=1)
    after = store.add_usage(job.job_id, JobUsage(lambda_invocations=1, lambda_ms=2, state_transitions=3))
    unchanged = store.add_usage(job.job_id, JobUsage())  # nothing to add: no write needed
    unknown = new_job_id()

    assert store.add_usage(unknown, JobUsage(lambda_invocations=1)) is None
    assert store.get(unknown) is None  # never a stub item for an unknown id
    assert after is not None
    assert unchanged is not None
    assert after.status is JobStatus.PROCESSING
    assert (
        after.usage
        == unchanged.usage
        == read(store, job.job_id).usage
        == JobUsage(state_transitions=3, lambda_invocations=2, lambda_ms=42, lambda_mb_ms=40 * 512)
    )


def test_a_job_is_active_from_its_creation_until_it_is_notified_however_it_ended(store: JobStore) -> None:
    running = [stored(store, status) for status in (JobStatus.CREATED, JobStatus.PROCESSING)]
    ended = stored(store, JobStatus.PROCESSING)
    recorded_failed = stored(store, JobStatus.FAILED)  # its Notify is still to run
    notified = stored(store, JobStatus.PROCESSING)
    for job in (ended, notified):
        assert store.transition(job.job_id, JobStatus.FAILED, error=JobError(type="x", message="x"))
    assert store.mark_notified(notified.job_id) is True

    assert sorted(store.active(10)) == sorted(j.job_id for j in [*running, ended, recorded_failed])
    assert len(store.active(1)) == 1
    assert store.mark_notified(notified.job_id) is True  # again: harmless
    assert read(store, notified.job_id).status is JobStatus.FAILED  # only the index changed


def test_an_unfinished_or_unknown_job_cannot_be_marked_notified(store: JobStore) -> None:
    running = stored(store, JobStatus.PROCESSING)
    unknown = new_job_id()
    assert store.mark_notified(running.job_id) is False
    assert store.mark_notified(unknown) is False
    assert store.get(unknown) is None  # no stub item written
    assert store.active(10) == [running.job_id]


# --- SlotPool ---------------------------------------------------------------------------
def test_slots_are_capped_held_once_per_job_and_freed_on_release(
    slot_pool: Callable[[int], SlotPool],
) -> None:
    pool = slot_pool(2)

    assert pool.acquire("a") is True
    assert pool.acquire("a") is True  # the same job holds one slot, however often it asks
    assert pool.acquire("b") is True
    assert pool.acquire("c") is False
    assert sorted(pool.holders()) == ["a", "b"]
    pool.release("a")
    pool.release("a")
    assert pool.acquire("c") is True
    assert sorted(pool.holders()) == ["b", "c"]


def test_a_capacity_of_zero_is_no_cap_and_keeps_no_holders(slot_pool: Callable[[int], SlotPool]) -> None:
    pool = slot_pool(0)

    assert all(pool.acquire(f"job{i}") for i in range(5))
    assert pool.holders() == []
    pool.release("job0")
    assert pool.holders() == []
