"""The sweeper against in-memory fakes: every job its workflow left behind is resumed under a new
execution name or ended, once, however many sweepers run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fluxrelay.domain.jobs import JobItem, JobStatus
from fluxrelay.domain.ports import ExecutionStatus
from fluxrelay.domain.sweep import SweepService
from tests.fakes.memory import MemorySlots
from tests.unit.test_service import T0, FakeUpstream, dispatcher, lifecycle, request, settings, submitter

GRACE = 120


def sweeper(world: dict[str, Any]) -> SweepService:
    return SweepService(
        lifecycle=lifecycle(world),
        store=world["store"],
        dispatcher=dispatcher(world, FakeUpstream()),
        settings=settings(SWEEP_GRACE_SECONDS=GRACE),
        clock=world["clock"],
    )


def later(world: dict[str, Any], seconds: float) -> None:
    world["clock"].now = T0 + timedelta(seconds=seconds)


def running_job(world: dict[str, Any]) -> JobItem:
    return submitter(world, FakeUpstream()).submit("alice", request())


def test_a_job_recorded_but_never_started_is_resumed_under_a_new_name(world: dict[str, Any]) -> None:
    job = lifecycle(world).create("alice", request())  # the function died right after recording
    later(world, GRACE + 1)
    out = sweeper(world).sweep()
    assert (out.examined, out.resumed, out.ended) == (1, 1, 0)
    assert world["workflow"].started == [(job.job_id, {"job_id": job.job_id, "wait_seconds": 1})]
    assert world["store"].get(job.job_id).execution_arn.endswith(f":{job.job_id}-r1")


def test_a_job_whose_execution_died_is_resumed_and_a_second_sweep_does_nothing(world: dict[str, Any]) -> None:
    job = running_job(world)
    world["workflow"].executions[job.execution_arn] = ExecutionStatus.ABORTED
    later(world, GRACE + 1)
    assert sweeper(world).sweep().resumed == 1
    assert sweeper(world).sweep().resumed == 0  # the new execution runs
    assert len(world["workflow"].started) == 2


def test_two_sweepers_that_saw_the_same_dead_job_start_one_execution(world: dict[str, Any]) -> None:
    job = running_job(world)
    world["workflow"].executions[job.execution_arn] = ExecutionStatus.FAILED
    later(world, GRACE + 1)
    stale = world["store"].get(job.job_id)
    first, second = sweeper(world), sweeper(world)
    assert first._rescue(stale, ExecutionStatus.FAILED, False, world["clock"].now) is True
    assert second._rescue(stale, ExecutionStatus.FAILED, False, world["clock"].now) is False
    assert len(world["workflow"].started) == 2  # the first start, and one resume


def test_running_and_young_jobs_are_left_alone(world: dict[str, Any]) -> None:
    running_job(world)
    lifecycle(world).create("alice", request())  # recorded a moment ago: its call is still going
    later(world, 1)
    assert sweeper(world).sweep().resumed == 0
    later(world, GRACE + 1)
    out = sweeper(world).sweep()
    assert (out.examined, out.resumed) == (2, 1)  # only the never-started one


def test_an_overdue_job_is_ended_as_timeout_stopped_and_notified_once(world: dict[str, Any]) -> None:
    job = running_job(world)  # its execution is still "running", stuck
    later(world, settings().job_deadline_seconds + GRACE + 1)
    out = sweeper(world).sweep()
    assert (out.resumed, out.ended) == (0, 1)
    ended = world["store"].get(job.job_id)
    assert ended.status is JobStatus.TIMEOUT
    assert world["workflow"].executions[job.execution_arn] is ExecutionStatus.ABORTED
    # The new execution's first check sees a finished job and runs Notify (SNS + webhook once).
    assert ended.execution_arn.endswith("-r1")
    assert sweeper(world).sweep().notified == 0  # its new execution runs and notifies


def test_a_finished_job_whose_workflow_died_before_notify_gets_one_execution_that_notifies(
    world: dict[str, Any],
) -> None:
    job = running_job(world)
    # The terminal write (StoreOutputs, MarkFailed, a cancel) happened; the execution died before Notify.
    world["store"].transition(job.job_id, JobStatus.COMPLETED, finished_at=world["clock"].now)
    world["workflow"].executions[job.execution_arn] = ExecutionStatus.ABORTED
    later(world, GRACE + 1)
    out = sweeper(world).sweep()
    assert (out.examined, out.resumed, out.ended, out.notified) == (1, 0, 0, 1)
    resumed = world["store"].get(job.job_id)
    assert resumed.status is JobStatus.COMPLETED  # its check sees the end and goes to Notify
    assert resumed.execution_arn.endswith(f":{job.job_id}-r1")
    later(world, 2 * GRACE + 2)
    assert sweeper(world).sweep().notified == 0  # the new execution runs
    assert len(world["workflow"].started) == 2


def test_a_finished_job_still_notifying_is_left_alone_past_its_deadline(world: dict[str, Any]) -> None:
    job = running_job(world)
    world["store"].transition(job.job_id, JobStatus.FAILED)  # its webhook retries go on for hours
    later(world, settings().job_deadline_seconds + GRACE + 1)
    out = sweeper(world).sweep()
    assert (out.examined, out.resumed, out.ended, out.notified) == (1, 0, 0, 0)
    assert world["workflow"].executions[job.execution_arn] is ExecutionStatus.RUNNING  # not stopped
    assert world["store"].get(job.job_id).status is JobStatus.FAILED


def test_a_notified_job_is_out_of_the_index(world: dict[str, Any]) -> None:
    job = running_job(world)
    world["store"].transition(job.job_id, JobStatus.FAILED)
    lifecycle(world).notified(job.job_id)
    later(world, GRACE + 1)
    assert sweeper(world).sweep().examined == 0


def test_the_sweeper_frees_the_slots_of_ended_jobs(world: dict[str, Any]) -> None:
    world["slots"] = MemorySlots(capacity=2)  # with a cap: without one no slot is kept at all
    job = running_job(world)
    world["store"].transition(job.job_id, JobStatus.FAILED)  # ended without reaching Notify
    assert world["slots"].held == {job.job_id}
    assert sweeper(world).sweep().slots_released == 1
    assert world["slots"].held == set()
