"""The global cap on concurrent upstream tasks (MaxConcurrentUpstreamTasks=1): a burst of jobs
all complete, never more than one runs upstream at a time, and the others wait in `created`
(not failed, not sent) meanwhile."""

from __future__ import annotations

import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, wait_for

pytestmark = pytest.mark.e2e

SECONDS_PER_IMAGE = 0.3
QUEUE_SECONDS = 0.01


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {
        "parameters": {"MaxConcurrentUpstreamTasks": "1"},
        "standin_options": {"seconds_per_image": SECONDS_PER_IMAGE, "queue_seconds": QUEUE_SECONDS},
    }


def submissions(stack: LocalStack, marker: str) -> list[dict[str, Any]]:
    seen = httpx.get(f"{stack.upstream_url}/_standin/submissions").json()["data"]
    return [s for s in seen if marker in s["input"]["prompt"]]


def _wall(rfc3339: str) -> float:
    seconds, _, fraction = rfc3339.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(seconds + "+00:00").timestamp()
    return whole + float(f"0.{fraction or 0}")


def test_a_burst_runs_one_task_upstream_at_a_time_and_the_rest_wait_in_created(
    stack: LocalStack, alice: Api
) -> None:
    marker, burst = uuid.uuid4().hex, 3
    barrier = threading.Barrier(burst)

    def submit(i: int) -> dict[str, Any]:
        api = Api(alice.base_url, alice.key)
        barrier.wait()
        response = api.submit({"prompt": f"queued {i} {marker}"})
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    with ThreadPoolExecutor(burst) as pool:
        accepted = list(pool.map(submit, range(burst)))

    # Right after the burst: one task went upstream, the others are ours to hold, as `created`.
    assert len(submissions(stack, marker)) == 1
    statuses = [alice.result(job["id"]).json()["data"]["status"] for job in accepted]
    assert statuses.count("created") >= burst - 1, statuses
    assert all(s in ("created", "processing", "completed") for s in statuses), statuses

    finished = [alice.wait_finished(job["id"], timeout=60) for job in accepted]
    assert [f["status"] for f in finished] == ["completed"] * burst

    # Each upstream task ran [created_at, created_at + queue + inference); none overlapped.
    key = stack.client("secretsmanager").get_secret_value(SecretId=stack.info["wavespeed_secret_name"])[
        "SecretString"
    ]
    tasks = submissions(stack, marker)
    assert len(tasks) == burst
    spans = []
    for task in tasks:
        upstream = httpx.get(
            f"{stack.upstream_url}/api/v3/predictions/{task['id']}/result",
            headers={"Authorization": f"Bearer {key}"},
        ).json()["data"]
        assert upstream["status"] == "completed"
        start = _wall(upstream["created_at"])
        spans.append((start, start + QUEUE_SECONDS + upstream["executionTime"] / 1000))
    spans.sort()
    for (_, earlier_end), (later_start, _) in itertools.pairwise(spans):
        assert later_start >= earlier_end - 0.02, spans


def test_the_slot_is_free_again_after_the_burst(stack: LocalStack, alice: Api) -> None:
    marker = uuid.uuid4().hex
    job = alice.submit({"prompt": f"after {marker}"}).json()["data"]
    wait_for(lambda: submissions(stack, marker), timeout=10, what="the next job to go upstream at once")
    assert alice.wait_finished(job["id"])["status"] == "completed"
    ddb = stack.client("dynamodb")

    def slot_free() -> bool:
        # Released by the Notify step, which runs just after the job shows completed.
        item = ddb.get_item(TableName=stack.table, Key={"pk": {"S": "SLOTS#upstream"}}).get("Item", {})
        return not item.get("holders", {}).get("SS")

    wait_for(slot_free, timeout=10, what="the upstream slot to be released")
