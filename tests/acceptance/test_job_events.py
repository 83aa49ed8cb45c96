"""Job events on the stack's SNS topic (its `TopicArn` output), with the message attributes that
subscribers' filter policies use. Reuses `finished_job`: no extra image."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.acceptance.checks import JOB_TIMEOUT, Caller, FinishedJob
from tests.acceptance.target import Target
from tests.support.stack import sns_events_for, wait_for


def test_finished_job_is_published_on_the_topic(
    target: Target, alice: Caller, alice_events: Callable[[], list[dict[str, Any]]], finished_job: FinishedJob
) -> None:
    events = wait_for(
        lambda: sns_events_for(alice_events, finished_job.id),
        timeout=JOB_TIMEOUT,
        interval=alice.poll_interval,
        what=f"the SNS event of {finished_job.id}",
    )

    # SNS delivers at least once: a duplicate is the same event.
    assert {e["status"] for e in events} == {"completed"}
    assert events[0]["attributes"] == {"status": "completed", "owner": alice.owner, "source": "api"}
    assert events[0]["outputs"] == [f"outputs/{finished_job.id}/0.png"]
