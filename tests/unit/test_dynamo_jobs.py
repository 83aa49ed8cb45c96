"""The DynamoDB job store against moto: round trips and conditional status changes."""

from __future__ import annotations

from typing import Any

import pytest

from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
from fluxrelay.domain.jobs import (
    JobError,
    JobItem,
    JobStatus,
    OutputItem,
    WebhookAttempt,
    WebhookState,
    new_job_id,
)
from fluxrelay.domain.ports import JobStore
from fluxrelay.domain.usage import JobUsage
from fluxrelay.models.wire import GenerationRequest
from tests.fakes.memory import MemoryJobStore
from tests.unit.conftest import TABLE


@pytest.fixture
def store(dynamodb: Any) -> DynamoJobStore:
    return DynamoJobStore(TABLE, client=dynamodb)


def job(**request: Any) -> JobItem:
    body = GenerationRequest.model_validate({"prompt": "a fox", **request}).model_dump(mode="json")
    return JobItem(job_id=new_job_id(), owner="alice", request=body)


def test_a_request_with_numbers_dynamodb_cannot_hold_round_trips(store: DynamoJobStore) -> None:
    # DynamoDB numbers stop at 1E-130; found by schemathesis as a 500 on submit.
    original = job(strength=5.361960653367454e-236, seed=2147483647)
    store.create(original)
    assert store.get(original.job_id).request == original.request


def test_status_changes_are_conditional_and_never_go_backwards(store: DynamoJobStore) -> None:
    item = job()
    store.create(item)
    assert store.transition(item.job_id, JobStatus.PROCESSING).status is JobStatus.PROCESSING
    done = store.transition(
        item.job_id,
        JobStatus.COMPLETED,
        outputs=[OutputItem(key="outputs/x/0.jpeg", content_type="image/jpeg", size=3, width=1, height=1)],
    )
    assert done.outputs[0].key == "outputs/x/0.jpeg"
    assert store.transition(item.job_id, JobStatus.FAILED, error=JobError(type="late", message="x")) is None
    assert store.transition(item.job_id, JobStatus.PROCESSING) is None
    assert store.get(item.job_id).status is JobStatus.COMPLETED


def test_claim_sets_a_marker_only_once(store: DynamoJobStore) -> None:
    item = job()
    store.create(item)
    assert store.claim(item.job_id, "dispatched_at", item.created_at) is True
    assert store.claim(item.job_id, "dispatched_at", item.created_at) is False
    store.update(item.job_id, dispatched_at=None)  # cleared: a requeued job may claim again
    assert store.claim(item.job_id, "dispatched_at", item.created_at) is True


@pytest.fixture(params=["dynamodb", "memory"])
def any_store(request: pytest.FixtureRequest) -> JobStore:
    """The real adapter and the fake, held to the same cases."""
    if request.param == "memory":
        return MemoryJobStore()
    return DynamoJobStore(TABLE, client=request.getfixturevalue("dynamodb"))


def test_usage_is_only_ever_added_to_and_survives_status_writes(any_store: JobStore) -> None:
    item = job()
    any_store.create(item)

    any_store.add_usage(item.job_id, JobUsage(lambda_invocations=1, lambda_ms=40, lambda_mb_ms=40 * 512))
    any_store.transition(item.job_id, JobStatus.PROCESSING, polls=1)
    after = any_store.add_usage(item.job_id, JobUsage(lambda_invocations=1, lambda_ms=2, state_transitions=3))
    unchanged = any_store.add_usage(item.job_id, JobUsage())  # nothing to add: no write needed
    unknown = new_job_id()

    assert any_store.add_usage(unknown, JobUsage(lambda_invocations=1)) is None
    assert any_store.get(unknown) is None
    assert after is not None
    assert unchanged is not None
    assert after.status is JobStatus.PROCESSING
    assert (
        after.usage
        == unchanged.usage
        == any_store.get(item.job_id).usage
        == JobUsage(state_transitions=3, lambda_invocations=2, lambda_ms=42, lambda_mb_ms=40 * 512)
    )


def test_webhook_state_is_written_only_over_the_attempt_count_it_was_read_at(any_store: JobStore) -> None:
    item = job().model_copy(update={"webhook": WebhookState(url="https://hooks.example/x")})
    any_store.create(item)
    sent = WebhookAttempt(
        number=1, at=item.created_at, trigger="workflow", status=503, latency_ms=12, outcome="will_retry"
    )
    first = item.webhook.with_attempt(sent)
    assert any_store.update_webhook(item.job_id, first, expected_attempts=0).webhook == first
    # A second writer that read the state before that attempt loses, and nothing changes.
    assert any_store.update_webhook(item.job_id, item.webhook, expected_attempts=0) is None
    assert any_store.get(item.job_id).webhook == first


def test_only_non_terminal_jobs_are_in_the_active_index(store: DynamoJobStore) -> None:
    running, finished = job(), job()
    store.create(running)
    store.create(finished)
    assert sorted(store.active(limit=10)) == sorted([running.job_id, finished.job_id])
    store.transition(finished.job_id, JobStatus.FAILED)
    assert store.active(limit=10) == [running.job_id]


def test_a_resume_is_claimed_once_per_count(store: DynamoJobStore) -> None:
    item = job()
    store.create(item)
    assert store.claim_resume(item.job_id, 0) is True
    assert store.claim_resume(item.job_id, 0) is False  # another sweeper counted first
    assert store.claim_resume(item.job_id, 1) is True
    assert store.get(item.job_id).resumes == 2
