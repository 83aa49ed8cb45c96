"""Per-key limits, the global upstream slot pool and `Idempotency-Key` runs, against DynamoDB
(moto in-process, `mock_aws`): the rules are conditional writes, so they are tested on a table
that evaluates them, including under concurrent callers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from fluxrelay.adapters.dynamo.limits import DynamoLimiter
from fluxrelay.adapters.dynamo.slots import DynamoSlotPool
from fluxrelay.api.idempotency import Idempotency, IdempotentOutcome
from fluxrelay.domain.errors import ConflictError, IdempotencyMismatchError, QuotaExceededError
from tests.unit.conftest import TABLE

T0 = datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def all_at_once(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action(i)` in `count` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# --------------------------------------------------------------------------- limiter
def test_requests_per_minute_refuses_the_next_request_with_retry_after_until_the_minute_ends(
    dynamodb: Any,
) -> None:
    clock = Clock()
    limiter = DynamoLimiter(TABLE, client=dynamodb, clock=clock)
    for _ in range(3):
        limiter.take("k1", images=1, requests_per_minute=3, images_per_day=100)

    with pytest.raises(QuotaExceededError) as refused:
        limiter.take("k1", images=1, requests_per_minute=3, images_per_day=100)

    assert refused.value.http_status == 429
    assert "3 requests per minute" in refused.value.message
    assert refused.value.retry_after == pytest.approx(15.0)  # 12:30:45 -> 12:31:00
    clock.now = T0.replace(second=0) + timedelta(minutes=1)
    limiter.take("k1", images=1, requests_per_minute=3, images_per_day=100)  # a new minute


def test_limits_are_per_key(dynamodb: Any) -> None:
    limiter = DynamoLimiter(TABLE, client=dynamodb, clock=Clock())
    limiter.take("k1", images=1, requests_per_minute=1, images_per_day=100)
    limiter.take("k2", images=1, requests_per_minute=1, images_per_day=100)
    with pytest.raises(QuotaExceededError):
        limiter.take("k1", images=1, requests_per_minute=1, images_per_day=100)


def test_daily_image_quota_counts_images_not_requests(dynamodb: Any) -> None:
    clock = Clock()
    limiter = DynamoLimiter(TABLE, client=dynamodb, clock=clock)
    limiter.take("k1", images=2, requests_per_minute=60, images_per_day=3)

    with pytest.raises(QuotaExceededError) as refused:
        limiter.take("k1", images=2, requests_per_minute=60, images_per_day=3)
    assert "daily quota of 3 images" in refused.value.message
    assert refused.value.retry_after == pytest.approx(
        (T0.replace(hour=0, minute=0, second=0) + timedelta(days=1) - T0).total_seconds()
    )

    limiter.take("k1", images=1, requests_per_minute=60, images_per_day=3)  # exactly fills it
    with pytest.raises(QuotaExceededError):
        limiter.take("k1", images=1, requests_per_minute=60, images_per_day=3)
    clock.now = T0 + timedelta(days=1)
    limiter.take("k1", images=3, requests_per_minute=60, images_per_day=3)  # a new UTC day


def test_a_request_larger_than_the_whole_quota_is_refused(dynamodb: Any) -> None:
    limiter = DynamoLimiter(TABLE, client=dynamodb, clock=Clock())
    with pytest.raises(QuotaExceededError):
        limiter.take("k1", images=4, requests_per_minute=60, images_per_day=3)


def test_counters_expire_by_ttl(dynamodb: Any) -> None:
    DynamoLimiter(TABLE, client=dynamodb, clock=Clock()).take(
        "k1", images=1, requests_per_minute=5, images_per_day=5
    )
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert {i["pk"]["S"].split("#")[0] for i in items} == {"RATE", "QUOTA"}
    assert all(int(i["expires_at"]["N"]) > T0.timestamp() for i in items)


@pytest.mark.parametrize(("limit", "callers"), [(5, 24), (1, 12)])
def test_concurrent_requests_never_exceed_the_rate_limit(dynamodb: Any, limit: int, callers: int) -> None:
    limiter = DynamoLimiter(TABLE, client=dynamodb, clock=Clock())

    results = all_at_once(
        callers, lambda _: limiter.take("k1", images=1, requests_per_minute=limit, images_per_day=1000)
    )

    taken = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, QuotaExceededError)]
    assert len(taken) == limit
    assert len(refused) == callers - limit


def test_concurrent_requests_never_exceed_the_daily_image_quota(dynamodb: Any) -> None:
    limiter = DynamoLimiter(TABLE, client=dynamodb, clock=Clock())

    results = all_at_once(
        20, lambda _: limiter.take("k1", images=2, requests_per_minute=1000, images_per_day=9)
    )

    assert sum(1 for r in results if r is None) == 4  # 4 * 2 images <= 9 < 5 * 2
    assert all(r is None or isinstance(r, QuotaExceededError) for r in results)


# --------------------------------------------------------------------------- slots
def test_slot_pool_caps_holders_and_frees_on_release(dynamodb: Any) -> None:
    pool = DynamoSlotPool(TABLE, capacity=2, client=dynamodb)
    assert pool.acquire("a")
    assert pool.acquire("b")
    assert not pool.acquire("c")
    assert pool.acquire("a"), "a holder acquiring again (a retried dispatch) keeps its slot"
    pool.release("a")
    pool.release("a")  # idempotent
    assert pool.acquire("c")
    assert not pool.acquire("d")
    assert sorted(pool.holders()) == ["b", "c"]


def test_slot_pool_without_a_cap_always_admits(dynamodb: Any) -> None:
    pool = DynamoSlotPool(TABLE, capacity=0, client=dynamodb)
    assert all(pool.acquire(f"j{i}") for i in range(50))


def test_concurrent_acquires_never_exceed_the_cap(dynamodb: Any) -> None:
    pool = DynamoSlotPool(TABLE, capacity=3, client=dynamodb)

    results = all_at_once(16, lambda i: pool.acquire(f"job{i}"))

    assert results.count(True) == 3
    assert results.count(False) == 13
    holders = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "SLOTS#upstream"}})["Item"]["holders"]["SS"]
    assert len(holders) == 3


# --------------------------------------------------------------------------- idempotency
class JobOutcome(IdempotentOutcome):
    job_id: str


@pytest.fixture
def idem(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Idempotency:
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    return Idempotency(TABLE, ttl_seconds=3600)


def run_once(idem: Idempotency, owner: str, key: str, payload: dict[str, Any], work: Any) -> tuple[str, bool]:
    outcome = idem.run_once(owner, key, payload, work, JobOutcome)
    return outcome.job_id, outcome.replayed


class Work:
    def __init__(self, job_id: str = "j1") -> None:
        self.calls = 0
        self.job_id = job_id

    def __call__(self) -> JobOutcome:
        self.calls += 1
        return JobOutcome(job_id=self.job_id)


def test_same_key_and_payload_runs_once_and_replays(idem: Idempotency) -> None:
    work = Work()
    first = run_once(idem, "alice", "key-1", {"body": {"prompt": "x"}}, work)
    again = run_once(idem, "alice", "key-1", {"body": {"prompt": "x"}}, work)

    assert first == ("j1", False)
    assert again == ("j1", True)
    assert work.calls == 1


def test_same_key_with_another_payload_is_a_mismatch(idem: Idempotency) -> None:
    work = Work()
    run_once(idem, "alice", "key-1", {"body": {"prompt": "x"}}, work)
    with pytest.raises(IdempotencyMismatchError) as refused:
        run_once(idem, "alice", "key-1", {"body": {"prompt": "y"}}, work)
    assert refused.value.http_status == 422
    assert work.calls == 1


def test_keys_are_scoped_per_owner(idem: Idempotency) -> None:
    alice, bob = Work("a"), Work("b")
    assert run_once(idem, "alice", "shared", {"body": {}}, alice) == ("a", False)
    assert run_once(idem, "bob", "shared", {"body": {}}, bob) == ("b", False)
    assert run_once(idem, "bob", "shared", {"body": {}}, bob) == ("b", True)
    assert (alice.calls, bob.calls) == (1, 1)


def test_a_duplicate_while_the_first_is_in_flight_is_a_conflict_with_retry_after(idem: Idempotency) -> None:
    seen: list[BaseException] = []

    def work() -> JobOutcome:
        try:
            run_once(idem, "alice", "key-1", {"body": {}}, Work())
        except ConflictError as exc:
            seen.append(exc)
        return JobOutcome(job_id="j1")

    run_once(idem, "alice", "key-1", {"body": {}}, work)

    assert len(seen) == 1
    conflict = seen[0]
    assert isinstance(conflict, ConflictError)
    assert conflict.http_status == 409
    assert (conflict.retry_after or 0) > 0


def test_an_error_is_not_remembered_so_a_retry_runs_again(idem: Idempotency) -> None:
    calls = 0

    def flaky() -> JobOutcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise QuotaExceededError("rate limited", retry_after=1)
        return JobOutcome(job_id="j2")

    with pytest.raises(QuotaExceededError):
        run_once(idem, "alice", "key-1", {"body": {}}, flaky)
    assert run_once(idem, "alice", "key-1", {"body": {}}, flaky) == ("j2", False)
    assert calls == 2


def test_the_replay_marker_is_never_stored(idem: Idempotency) -> None:
    run_once(idem, "alice", "key-1", {"body": {}}, Work())
    (record,) = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"]
    assert json.loads(record["data"]["S"]) == {"job_id": "j1"}


def test_records_expire_after_the_configured_window(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    run_once(Idempotency(TABLE, ttl_seconds=120), "alice", "key-1", {"body": {}}, Work())

    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"]
    assert len(items) == 1
    record = items[0]
    expires = int(record["expires_at"]["N"])
    now = datetime.now(UTC).timestamp()
    assert now + 60 < expires <= now + 121
