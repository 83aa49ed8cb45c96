"""Cancel and deadlines against the in-memory fakes: a queued job ends unbilled, a running one
ends on our side (the upstream may still bill it), a finished one is a 409; the workflow's next
step sees the end and notifies once; `Cancel-After` ends an unfinished job as `timeout`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fluxrelay.api.presenter import PredictionPresenter
from fluxrelay.domain.cancel import CancelService
from fluxrelay.domain.errors import ConflictError, InvalidRequestError, NotFoundError
from fluxrelay.domain.jobs import JobStatus
from fluxrelay.domain.outputs import OutputService
from fluxrelay.domain.poll import PollService
from fluxrelay.models.wire import parse_cancel_after
from fluxrelay.models.workflow import ResultRoute
from tests.fakes.memory import MemoryOutputSource, MemoryOutputStore
from tests.unit.conftest import T0
from tests.unit.test_service import (
    FakeUpstream,
    completed_job,
    dispatcher,
    image_bytes,
    lifecycle,
    make_job,
    notifier,
    poll_service,
    pred,
    request,
    settings,
    submitter,
)


def canceller(world: dict[str, Any], **kw: Any) -> CancelService:
    return CancelService(lifecycle(world, **kw))


def test_a_queued_job_is_cancelled_unbilled_and_its_workflow_notifies_once(world: dict[str, Any]) -> None:
    world["slots"].capacity = 1
    upstream = FakeUpstream()
    running = submitter(world, upstream).submit("alice", request())
    queued = submitter(world, upstream).submit("alice", request())
    assert len(upstream.submitted) == 1

    cancelled = canceller(world).cancel("alice", queued.job_id)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error is not None
    assert (cancelled.error.type, cancelled.error.retryable) == ("cancelled", False)
    assert "nothing is billed" in cancelled.error.message
    # The workflow's next check sees the end and goes to Notify without dispatching it.
    assert poll_service(world, upstream).check(queued.job_id).next is ResultRoute.NOTIFY
    assert len(upstream.submitted) == 1
    svc, sns, _ = notifier(world, [])
    svc.notify(queued.job_id)
    svc.notify(queued.job_id)
    assert [message["job_id"] for message, _ in sns.messages] == [queued.job_id]
    assert sns.messages[0][1]["status"] == "cancelled"
    # It held no upstream slot, so it freed none: the running job keeps its own.
    assert world["slots"].held == {running.job_id}


def test_a_dispatch_that_loses_the_race_to_cancel_sends_nothing(world: dict[str, Any]) -> None:
    world["slots"].capacity = 1
    upstream = FakeUpstream()
    blocker = submitter(world, upstream).submit("alice", request())
    queued = submitter(world, upstream).submit("alice", request())
    canceller(world).cancel("alice", queued.job_id)
    world["slots"].release(blocker.job_id)

    # A dispatch that read the job before the cancel: its claim is refused, nothing is sent.
    after = dispatcher(world, upstream).dispatch(queued, request(), requeue_if_unsent=True)

    assert after.status is JobStatus.CANCELLED
    assert len(upstream.submitted) == 1
    assert queued.job_id not in world["slots"].held


def test_a_running_job_is_cancelled_on_our_side_and_its_late_images_are_discarded(
    world: dict[str, Any],
) -> None:
    job_id = make_job(world)

    cancelled = canceller(world).cancel("alice", job_id)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error is not None
    assert "WaveSpeed may still bill it" in cancelled.error.message
    # No upstream result is read any more (the fake would raise if asked).
    assert poll_service(world, FakeUpstream([])).check(job_id).next is ResultRoute.NOTIFY
    assert world["store"].get(job_id).outputs == []


@pytest.mark.parametrize("outputs", ["discard", "keep"])
def test_cancel_wakes_the_parked_workflow_whose_check_ends_it_and_notifies_once(
    world: dict[str, Any], outputs: str
) -> None:
    # A job still queued for a slot: with either setting there is nothing to wait for.
    world["slots"].capacity = 1
    submitter(world, FakeUpstream()).submit("alice", request())
    queued = submitter(world, FakeUpstream()).submit("alice", request())
    assert lifecycle(world).park(queued.job_id, "token-1") is False  # parked for a poll interval

    canceller(world, CANCELLED_OUTPUTS=outputs).cancel("alice", queued.job_id)

    assert world["workflow"].woken == ["token-1"]
    assert poll_service(world, FakeUpstream([])).check(queued.job_id).next is ResultRoute.NOTIFY
    svc, sns, _ = notifier(world, [])
    svc.notify(queued.job_id)
    svc.notify(queued.job_id)
    assert [message["job_id"] for message, _ in sns.messages] == [queued.job_id]


def test_a_cancel_while_the_workflow_checks_makes_its_next_park_wake_at_once(world: dict[str, Any]) -> None:
    job_id = make_job(world)  # running upstream; its workflow is between two waits

    canceller(world).cancel("alice", job_id)

    assert world["workflow"].woken == []
    assert lifecycle(world).park(job_id, "token-1") is True
    assert world["workflow"].woken == ["token-1"]
    assert poll_service(world, FakeUpstream([])).check(job_id).next is ResultRoute.NOTIFY


def test_with_keep_the_workflow_waits_for_the_images_and_stores_them_on_the_cancelled_job(
    world: dict[str, Any],
) -> None:
    keep = {"CANCELLED_OUTPUTS": "keep"}
    job_id = make_job(world)
    lifecycle(world, **keep).park(job_id, "token-1")
    canceller(world, **keep).cancel("alice", job_id)
    # Its parked wait runs its course: the images it waits for are not there any sooner.
    assert world["workflow"].woken == []
    upstream = FakeUpstream([pred("processing"), pred("completed", outputs=["https://cdn/0.jpeg"])])
    poll = PollService(
        lifecycle=lifecycle(world, **keep),
        store=world["store"],
        upstream=upstream,
        dispatcher=dispatcher(world, upstream, **keep),
        settings=settings(**keep),
        clock=world["clock"],
    )
    store_outputs = OutputService(
        lifecycle=lifecycle(world, **keep),
        outputs=MemoryOutputStore(),
        sources=MemoryOutputSource({"https://cdn/0.jpeg": image_bytes(size=(256, 256))}),
        settings=settings(**keep),
    )

    assert poll.check(job_id).next is ResultRoute.WAIT
    assert poll.check(job_id).next is ResultRoute.STORE_OUTPUTS
    store_outputs.store_outputs(job_id)

    job = world["store"].get(job_id)
    assert job.status is JobStatus.CANCELLED
    assert [o.key for o in job.outputs] == [f"outputs/{job_id}/0.jpeg"]
    assert "kept if they arrive" in job.error.message
    assert poll.check(job_id).next is ResultRoute.NOTIFY


def test_a_finished_job_cannot_be_cancelled_and_the_409_names_its_status(world: dict[str, Any]) -> None:
    job_id = completed_job(world, ["https://cdn/0.jpeg"])
    OutputService(
        lifecycle=lifecycle(world),
        outputs=MemoryOutputStore(),
        sources=MemoryOutputSource({"https://cdn/0.jpeg": image_bytes()}),
        settings=settings(),
    ).store_outputs(job_id)

    with pytest.raises(ConflictError, match="already ended: its status is completed"):
        canceller(world).cancel("alice", job_id)
    assert world["store"].get(job_id).status is JobStatus.COMPLETED


def test_someone_elses_job_is_not_found_and_stays_as_it_was(world: dict[str, Any]) -> None:
    job_id = make_job(world)

    with pytest.raises(NotFoundError):
        canceller(world).cancel("mallory", job_id)
    assert world["store"].get(job_id).status is JobStatus.CREATED


def test_a_job_without_a_workflow_yet_gets_one_that_notifies(world: dict[str, Any]) -> None:
    job = lifecycle(world).create("alice", request(), status=JobStatus.WAITING_UPLOAD)

    canceller(world).cancel("alice", job.job_id)

    assert [started for started, _ in world["workflow"].started] == [job.job_id]


def test_the_prediction_carries_the_typed_error_only_when_there_is_one(world: dict[str, Any]) -> None:
    presenter = PredictionPresenter(MemoryOutputStore(), settings())
    running = make_job(world)
    cancelled = canceller(world).cancel("alice", make_job(world))

    wire = presenter.present(cancelled).model_dump(mode="json", by_alias=True)
    plain = presenter.present(world["store"].get(running)).model_dump(mode="json", by_alias=True)

    assert (wire["status"], wire["error_type"], wire["retryable"]) == ("cancelled", "cancelled", False)
    assert "error_type" not in plain
    assert "retryable" not in plain


# --- Cancel-After ---------------------------------------------------------------------------
def test_cancel_after_ends_an_unfinished_job_as_timeout_when_it_is_due(world: dict[str, Any]) -> None:
    job = submitter(world, FakeUpstream()).submit("alice", request(), cancel_after_seconds=30)
    poll = poll_service(world, FakeUpstream([pred("processing")]))
    assert job.deadline_at == T0 + timedelta(seconds=30)

    assert poll.check(job.job_id).next is ResultRoute.WAIT
    world["clock"].now = T0 + timedelta(seconds=30)
    outcome = poll.check(job.job_id)

    assert (outcome.next, outcome.status) == (ResultRoute.NOTIFY, "timeout")
    ended = world["store"].get(job.job_id)
    assert ended.error is not None
    assert ended.error.message == "the job did not finish within its Cancel-After of 30 s"


def test_cancel_after_is_capped_by_the_operators_deadline_and_survives_a_queue(world: dict[str, Any]) -> None:
    longer = submitter(world, FakeUpstream()).submit("alice", request(), cancel_after_seconds=3600)
    assert longer.deadline_at == T0 + timedelta(seconds=60)  # the operator's JOB_DEADLINE_SECONDS

    world["slots"].capacity = 1
    queued = submitter(world, FakeUpstream()).submit("alice", request(), cancel_after_seconds=20)
    world["clock"].now = T0 + timedelta(seconds=10)
    world["slots"].release(longer.job_id)
    dispatched = dispatcher(world, FakeUpstream()).dispatch(queued, request(), requeue_if_unsent=True)

    # Sent 10 s in: the operator's deadline restarts, the caller's does not move.
    assert dispatched.upstream_id is not None
    assert dispatched.deadline_at == T0 + timedelta(seconds=20)


@pytest.mark.parametrize(
    ("header", "seconds"), [("45s", 45), ("5m", 300), ("1h", 3600), ("1m30s", 90), (" 90 ", 90), ("2M", 120)]
)
def test_cancel_after_reads_durations(header: str, seconds: int) -> None:
    assert parse_cancel_after(header) == seconds


@pytest.mark.parametrize("header", ["", "0", "0s", "5 m", "-5s", "1.5m", "5min", "m", "30s1m", "9" * 20])
def test_a_bad_cancel_after_is_refused_naming_the_header(header: str) -> None:
    with pytest.raises(InvalidRequestError, match="Cancel-After must be a duration"):
        parse_cancel_after(header)
