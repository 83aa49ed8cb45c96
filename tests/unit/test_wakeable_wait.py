"""The push path against in-memory fakes: the upstream's webhook wakes the parked workflow, in
whichever order the push and the park arrive, and a check answers every pending wake request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fluxrelay.domain.errors import AmbiguousSubmitError, NotFoundError
from fluxrelay.domain.jobs import JobItem, JobStatus
from fluxrelay.domain.poll import PollService
from fluxrelay.domain.push import PushOutcome, PushService
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.models.workflow import ResultRoute, WakeRoute
from tests.unit.test_service import FakeUpstream, dispatcher, lifecycle, request, settings, submitter

TASK = "a" * 32  # FakeUpstream's task id


def submitted(world: dict[str, Any]) -> JobItem:
    return submitter(world, FakeUpstream()).submit("alice", request(), result_base_url="https://api.example")


def pushed(status: str = "completed", task_id: str = TASK) -> UpstreamPrediction:
    return UpstreamPrediction(id=task_id, status=status, outputs=["https://cdn.example/o.jpeg"])


def test_every_upstream_submit_registers_our_push_route_for_the_job(world: dict[str, Any]) -> None:
    upstream = FakeUpstream()
    job = submitter(world, upstream).submit("alice", request(), result_base_url="https://api.example/")
    assert upstream.webhooks == [f"https://api.example/api/v3/upstream/webhooks/{job.job_id}"]


def test_a_job_without_a_public_url_is_submitted_without_a_push_route(world: dict[str, Any]) -> None:
    upstream = FakeUpstream()
    submitter(world, upstream).submit("alice", request())
    assert upstream.webhooks == [None]


def test_push_to_a_parked_workflow_sends_its_token_back(world: dict[str, Any]) -> None:
    job = submitted(world)
    assert lifecycle(world).park(job.job_id, "token-1") is False  # nothing due yet: it waits
    assert PushService(lifecycle(world)).receive(job.job_id, pushed()) is PushOutcome.WOKEN
    assert world["workflow"].woken == ["token-1"]


def test_push_before_the_workflow_parks_wakes_the_park_at_once(world: dict[str, Any]) -> None:
    job = submitted(world)
    assert PushService(lifecycle(world)).receive(job.job_id, pushed()) is PushOutcome.NOTED
    assert lifecycle(world).park(job.job_id, "token-1") is True
    assert world["workflow"].woken == ["token-1"]


def test_duplicate_pushes_are_harmless(world: dict[str, Any]) -> None:
    job = submitted(world)
    lifecycle(world).park(job.job_id, "token-1")
    push = PushService(lifecycle(world))
    assert push.receive(job.job_id, pushed()) is PushOutcome.WOKEN
    assert push.receive(job.job_id, pushed()) is PushOutcome.NOTED  # the token is spent
    assert world["workflow"].woken == ["token-1"]


def test_a_check_answers_the_pending_wake_so_the_next_park_waits(world: dict[str, Any]) -> None:
    job = submitted(world)
    PushService(lifecycle(world)).receive(job.job_id, pushed("processing"))
    poll = PollService(
        lifecycle=lifecycle(world),
        store=world["store"],
        upstream=FakeUpstream([pushed("processing")]),
        dispatcher=dispatcher(world, FakeUpstream()),
        settings=settings(),
        clock=world["clock"],
    )
    assert poll.check(job.job_id).next is ResultRoute.WAIT
    stored = world["store"].get(job.job_id)
    assert stored.wake_token is None
    assert stored.wake_requested_at is None
    assert lifecycle(world).park(job.job_id, "token-2") is False
    assert world["workflow"].woken == []


def test_a_park_on_an_overdue_job_wakes_at_once_but_a_finished_job_waits(world: dict[str, Any]) -> None:
    # A finished (e.g. cancelled) job may be waiting for late outputs: its wait runs its course.
    done, overdue = submitted(world), submitted(world)
    world["store"].transition(done.job_id, JobStatus.FAILED)
    assert lifecycle(world).park(done.job_id, "t-done") is False
    world["clock"].now += timedelta(seconds=settings().job_deadline_seconds + 1)
    assert lifecycle(world).park(overdue.job_id, "t-overdue") is True
    assert world["workflow"].woken == ["t-overdue"]


@pytest.mark.parametrize("case", ["finished", "other task"])
def test_late_or_foreign_pushes_are_ignored(world: dict[str, Any], case: str) -> None:
    job = submitted(world)
    lifecycle(world).park(job.job_id, "token-1")
    if case == "finished":
        world["store"].transition(job.job_id, JobStatus.COMPLETED)
        push = pushed()
    else:
        push = pushed(task_id="b" * 32)
    assert PushService(lifecycle(world)).receive(job.job_id, push) is PushOutcome.IGNORED
    assert world["workflow"].woken == []


def test_push_for_an_unknown_job_is_not_found(world: dict[str, Any]) -> None:
    with pytest.raises(NotFoundError):
        PushService(lifecycle(world)).receive("f" * 32, pushed())


def test_a_push_that_overtakes_the_submit_answer_makes_the_first_check_immediate(
    world: dict[str, Any],
) -> None:
    class PushingUpstream(FakeUpstream):
        """The task ends, and its webhook arrives, before the submit's answer does."""

        def submit(self, payload: Any, *, webhook: str | None = None) -> UpstreamPrediction:
            job_id = webhook.rsplit("/", 1)[-1] if webhook else ""
            self.outcome = PushService(lifecycle(world)).receive(job_id, pushed())
            return super().submit(payload, webhook=webhook)

    upstream = PushingUpstream()
    job = submitter(world, upstream).submit("alice", request(), result_base_url="https://api.example")
    assert upstream.outcome is PushOutcome.NOTED
    assert lifecycle(world).park(job.job_id, "token-1") is True


def test_a_push_for_a_job_never_sent_upstream_is_ignored(world: dict[str, Any]) -> None:
    job = lifecycle(world).create("alice", request())
    assert PushService(lifecycle(world)).receive(job.job_id, pushed()) is PushOutcome.IGNORED


def test_the_webhook_of_an_ambiguous_submit_adopts_its_task_and_keeps_its_result(
    world: dict[str, Any],
) -> None:
    upstream = FakeUpstream(submit_error=AmbiguousSubmitError("timed out after send"))
    job = submitter(world, upstream).submit("alice", request(), result_base_url="https://api.example")
    lifecycle(world).park(job.job_id, "token-1")
    assert PushService(lifecycle(world)).receive(job.job_id, pushed()) is PushOutcome.WOKEN
    adopted = world["store"].get(job.job_id)
    # One write adopts the task and records its result: one charge, the result kept.
    assert (adopted.upstream_id, adopted.upstream_outputs) == (TASK, ["https://cdn.example/o.jpeg"])
    assert world["workflow"].routes == [WakeRoute.STORE_OUTPUTS]
    assert len(upstream.submitted) == 1


def test_the_adopted_task_of_an_unfinished_push_is_polled_by_the_woken_check(world: dict[str, Any]) -> None:
    upstream = FakeUpstream(submit_error=AmbiguousSubmitError("timed out after send"))
    job = submitter(world, upstream).submit("alice", request(), result_base_url="https://api.example")
    lifecycle(world).park(job.job_id, "token-1")
    assert PushService(lifecycle(world)).receive(job.job_id, pushed("processing")) is PushOutcome.WOKEN
    assert world["workflow"].routes == [WakeRoute.CHECK]
    poll = PollService(
        lifecycle=lifecycle(world),
        store=world["store"],
        upstream=FakeUpstream([pushed()]),
        dispatcher=dispatcher(world, upstream),
        settings=settings(),
        clock=world["clock"],
    )
    assert poll.check(job.job_id).next is ResultRoute.STORE_OUTPUTS
    assert len(upstream.submitted) == 1


# --------------------------------------------------------------------------- the push's result
def test_a_completed_push_is_recorded_and_its_wait_goes_straight_to_storing_it(world: dict[str, Any]) -> None:
    job = submitted(world)
    lifecycle(world).park(job.job_id, "token-1")
    push = UpstreamPrediction(
        id=TASK,
        status="completed",
        outputs=["https://cdn.example/0.png", "https://cdn.example/1.png"],
        has_nsfw_contents=[False, True],
        timings={"inference": 1250},
    )
    assert PushService(lifecycle(world)).receive(job.job_id, push) is PushOutcome.WOKEN
    assert world["workflow"].routes == [WakeRoute.STORE_OUTPUTS]
    # What a check would have recorded from its own GET (none was made: FakeUpstream has none).
    stored = world["store"].get(job.job_id)
    assert stored.status is JobStatus.CREATED  # until StoreOutputs has the images
    assert (stored.upstream_status, stored.upstream_outputs) == ("completed", push.outputs)
    assert (stored.nsfw, stored.inference_ms) == ([False, True], 1250)
    # The job's end spends what is left of the wait.
    lifecycle(world).finish(job.job_id, JobStatus.COMPLETED)
    finished = world["store"].get(job.job_id)
    assert (finished.wake_token, finished.wake_requested_at) == (None, None)


def test_a_completed_push_before_the_park_sends_the_park_straight_to_storing_it(
    world: dict[str, Any],
) -> None:
    job = submitted(world)
    assert PushService(lifecycle(world)).receive(job.job_id, pushed()) is PushOutcome.NOTED
    assert lifecycle(world).park(job.job_id, "token-1") is True
    assert world["workflow"].routes == [WakeRoute.STORE_OUTPUTS]


@pytest.mark.parametrize("case", ["failed upstream", "overdue"])
def test_other_pushes_only_wake_a_check(world: dict[str, Any], case: str) -> None:
    job = submitted(world)
    lifecycle(world).park(job.job_id, "token-1")
    if case == "overdue":
        # Past its deadline: the check times it out, whatever the push says.
        world["clock"].now += timedelta(seconds=settings().job_deadline_seconds + 1)
        push = pushed()
    else:
        push = pushed("failed")  # the check reads the failure itself and records it
    assert PushService(lifecycle(world)).receive(job.job_id, push) is PushOutcome.WOKEN
    assert world["workflow"].routes == [WakeRoute.CHECK]
