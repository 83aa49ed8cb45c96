"""Bulk replay against the in-memory fakes: each finished job of the caller's history page that has
a webhook is sent again (same `webhook-id`, logged as a replay), the others are skipped and say
why, another owner's jobs are never touched, and the cursor walks a long range once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from fluxrelay.api.presenter import redelivery_report
from fluxrelay.domain.history import HistoryService
from fluxrelay.domain.jobs import JobError, JobStatus
from fluxrelay.models.deliveries import WebhookRedeliverRequest
from fluxrelay.models.wire import Prediction, describe_validation_error
from tests.unit.conftest import T0
from tests.unit.test_service import FakeUpstream, deliverer, request, settings, submitter


class ReceiverByUrl:
    """A `WebhookSender` whose answer depends on the URL (replays run side by side, in no set
    order); it records every delivery."""

    def __init__(self, answers: dict[str, int]) -> None:
        self.answers = answers
        self.delivered: list[tuple[str, str]] = []

    def deliver(self, url: str, payload: Prediction, secrets: list[str], message_id: str) -> int:
        self.delivered.append((url, message_id))
        return self.answers.get(url, 200)


def job(
    world: dict[str, Any], owner: str = "alice", *, webhook: str | None = None, ended: bool = True
) -> str:
    made = submitter(world, FakeUpstream()).submit(owner, request(), webhook_url=webhook)
    if ended:
        world["store"].transition(made.job_id, JobStatus.FAILED, error=JobError(type="t", message="m"))
    return made.job_id


def bulk(world: dict[str, Any], sender: ReceiverByUrl, owner: str = "alice", **body: Any) -> Any:
    """One call of the route: the history listing of `owner`, then each job's replay."""
    jobs, cursor = HistoryService(world["store"]).listing(owner, WebhookRedeliverRequest.model_validate(body))
    return redelivery_report(deliverer(world, sender, settings()).replay_each(jobs), cursor)


def test_each_finished_job_with_a_webhook_is_sent_again_and_the_rest_are_skipped(
    world: dict[str, Any],
) -> None:
    up, down = "https://hooks.example/up", "https://hooks.example/down"
    delivered = job(world, webhook=up)
    refused = job(world, webhook=down)
    running = job(world, webhook=up, ended=False)
    silent = job(world)
    theirs = job(world, "bob", webhook="https://hooks.example/bob")
    sender = ReceiverByUrl({down: 503})

    report = bulk(world, sender)

    assert (report.matched, report.redelivered, report.failed, report.skipped) == (4, 1, 1, 2)
    outcomes = {item.id: (item.outcome, item.status_code, item.error) for item in report.items}
    assert outcomes == {
        delivered: ("redelivered", 200, None),
        refused: ("failed", 503, "receiver answered HTTP 503"),
        running: ("skipped", None, "this prediction is created: its webhook is sent when it finishes"),
        silent: ("skipped", None, "this prediction has no webhook (submit with ?webhook=https://...)"),
    }
    assert sorted(sender.delivered) == sorted([(up, f"msg_{delivered}"), (down, f"msg_{refused}")])
    assert theirs not in outcomes
    for job_id in (delivered, refused):
        (logged,) = world["store"].get(job_id).webhook.log
        assert (logged.trigger, logged.status) == ("replay", 200 if job_id == delivered else 503)
    assert world["store"].get(running).webhook.log == []
    assert report.next_cursor is None


def test_the_cursor_walks_a_long_range_replaying_each_job_once(world: dict[str, Any]) -> None:
    made = []
    for n in range(5):
        world["clock"].now = T0 + timedelta(minutes=n)
        made.append(job(world, webhook=f"https://hooks.example/{n}"))
    sender = ReceiverByUrl({})

    seen, cursor, calls = [], None, 0
    while True:
        report = bulk(world, sender, limit=2, cursor=cursor)
        calls += 1
        assert report.matched <= 2
        seen += [item.id for item in report.items]
        cursor = report.next_cursor
        if cursor is None:
            break

    assert seen == list(reversed(made))  # newest first
    assert sorted(message for _, message in sender.delivered) == sorted(f"msg_{j}" for j in made)
    assert calls == 3


def test_the_filters_choose_the_jobs(world: dict[str, Any]) -> None:
    old = job(world, webhook="https://hooks.example/a")
    world["clock"].now = T0 + timedelta(hours=2)
    recent = job(world, webhook="https://hooks.example/b")
    world["clock"].now = T0 + timedelta(hours=3)
    cancelled = job(world, webhook="https://hooks.example/c", ended=False)
    world["store"].transition(cancelled, JobStatus.CANCELLED)
    sender = ReceiverByUrl({})

    in_range = bulk(world, sender, created_after=T0 + timedelta(hours=1), status="failed")
    before = bulk(world, sender, created_before=T0 + timedelta(minutes=30))

    assert [item.id for item in in_range.items] == [recent]
    assert [item.id for item in before.items] == [old]
    assert len(sender.delivered) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 21}, "limit must be a whole number from 1 to 20"),
        ({"limit": 0}, "limit must be a whole number from 1 to 20"),
        ({"status": "done"}, "status must be one of created, processing"),
        ({"created_before": "soon"}, "created_before must be an ISO 8601 date or date-time"),
        ({"cursor": 5}, "cursor must be the next_cursor of an earlier answer"),
        ({"since": "2026-12-01"}, "unknown field 'since'"),
    ],
)
def test_a_bad_filter_names_the_field_and_its_rule(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookRedeliverRequest.model_validate(body)
    assert message in describe_validation_error(caught.value)
