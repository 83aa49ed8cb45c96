"""The task handlers in-process against moto, with the real template deployed (waits scaled
down), invoked with the sample events in `events/` (the same files `sam local invoke` takes).

The rules under test: a status change never moves a job backwards, store_outputs is idempotent,
mark_failed reports the failed step's own message, notify publishes each job event once.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
from fluxrelay.composition import container
from fluxrelay.domain.errors import JobStateError
from fluxrelay.domain.jobs import JobItem, JobStatus, WebhookState, new_job_id
from fluxrelay.models.wire import GenerationRequest
from fluxrelay.models.workflow import TASK_TRANSITIONS
from fluxrelay_local.stack import LocalStack
from tests.support.stack import WebhookReceiver, job_item, sns_events_for, sns_queue, wait_for

EVENTS = Path(__file__).resolve().parents[2] / "events"
OWNER = "alice"


# --------------------------------------------------------------------------- helpers
def event(name: str, **changes: Any) -> dict[str, Any]:
    """A sample event from events/<name>.json with top-level fields replaced (e.g. job_id)."""
    loaded = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return {**loaded, **changes}


@pytest.fixture(scope="module")
def jobs(stack: LocalStack) -> DynamoJobStore:
    return DynamoJobStore(stack.table, client=stack.client("dynamodb"))


def png_base64(width: int, height: int, colour: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def recorded_job(
    jobs: DynamoJobStore,
    status: JobStatus,
    *,
    upstream_outputs: list[str] | None = None,
    webhook: str | None = None,
) -> JobItem:
    """A job written straight to the table in `status`, as the API and workflow leave it."""
    request = GenerationRequest.model_validate(
        {"prompt": "a lighthouse", "size": "320*256", "num_images": 2, "output_format": "png"}
    )
    job = JobItem(
        job_id=new_job_id(),
        owner=OWNER,
        request=request.model_dump(mode="json"),
        status=status,
        upstream_id=new_job_id(),
        upstream_status="completed" if upstream_outputs else "processing",
        upstream_outputs=upstream_outputs or [],
        nsfw=[False] * len(upstream_outputs or []),
        webhook=WebhookState(url=webhook) if webhook else None,
    )
    jobs.create(job)
    return job


def two_outputs() -> list[str]:
    return [png_base64(320, 256, "teal"), png_base64(320, 256, "orange")]


def output_objects(stack: LocalStack, job_id: str) -> dict[str, str]:
    """Key → ETag of everything under outputs/<job id>/."""
    listed = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=f"outputs/{job_id}/")
    return {o["Key"]: o["ETag"] for o in listed.get("Contents", [])}


@pytest.fixture(scope="module")
def completed_job_id(stack: LocalStack) -> str:
    """A job submitted with the API event and completed by the real workflow."""
    response = stack.invoke("ApiFunction", event("api_submit"))
    assert response["statusCode"] == 200, response
    job_id = json.loads(response["body"])["data"]["id"]
    wait_for(lambda: (job_item(stack, job_id) or {}).get("status") == "completed", what="the job to complete")
    execution = stack.wait_for_execution(job_item(stack, job_id)["execution_arn"])  # type: ignore[index]
    assert execution["status"] == "SUCCEEDED"
    return str(job_id)


# --------------------------------------------------------------------------- API and authorizer
def test_api_submit_event_records_the_job_with_our_result_url(
    jobs: DynamoJobStore, completed_job_id: str
) -> None:
    job = jobs.get(completed_job_id)
    assert job is not None
    assert job.owner == OWNER
    assert job.request["loras"] == [{"path": "alvdansen/frosting_lane_flux", "scale": 0.8}]
    assert job.result_url.endswith(f"/api/v3/predictions/{completed_job_id}/result")
    assert [o.key for o in job.outputs] == [f"outputs/{completed_job_id}/0.jpeg"]


def test_authorizer_resolves_a_key_to_its_owner_and_never_denies(stack: LocalStack) -> None:
    key, record = DynamoApiKeyStore(stack.table, client=stack.client("dynamodb")).create("carol")
    sample = event("authorizer")

    known = stack.invoke(
        "AuthorizerFunction", {**sample, "headers": {**sample["headers"], "authorization": f"Bearer {key}"}}
    )
    unknown = stack.invoke("AuthorizerFunction", sample)
    missing = stack.invoke(
        "AuthorizerFunction",
        {**sample, "headers": {k: v for k, v in sample["headers"].items() if k != "authorization"}},
    )

    assert known == {"isAuthorized": True, "context": {"owner": "carol", "key_id": record.key_id}}
    assert unknown == {"isAuthorized": True, "context": {"owner": "", "auth_error": "invalid"}}
    assert missing == {"isAuthorized": True, "context": {"owner": "", "auth_error": "missing"}}


# --------------------------------------------------------------------------- never backwards
def assert_unchanged_but_metered(before: Any, after: Any, task: str) -> None:
    """Nothing changed on the job but its cost: one more invocation of `task`."""
    usage = {k for k in (before or {}).keys() | (after or {}).keys() if k.startswith("usage_")}
    assert {k: v for k, v in after.items() if k not in usage} == {
        k: v for k, v in before.items() if k not in usage
    }
    assert after["usage_lambda_invocations"] == before["usage_lambda_invocations"] + 1
    assert after["usage_state_transitions"] == before["usage_state_transitions"] + TASK_TRANSITIONS[task]


def test_check_result_on_a_completed_job_changes_nothing(stack: LocalStack, completed_job_id: str) -> None:
    before = job_item(stack, completed_job_id)

    out = stack.invoke("CheckResultFunction", event("check_result", job_id=completed_job_id))

    assert out == {"job_id": completed_job_id, "status": "completed", "next": "notify", "wait_seconds": 0}
    assert_unchanged_but_metered(before, job_item(stack, completed_job_id), "CheckResult")


def test_mark_failed_on_a_completed_job_changes_nothing(stack: LocalStack, completed_job_id: str) -> None:
    before = job_item(stack, completed_job_id)

    out = stack.invoke("MarkFailedFunction", event("mark_failed", job_id=completed_job_id))

    assert out == {"job_id": completed_job_id, "status": "completed"}
    assert_unchanged_but_metered(before, job_item(stack, completed_job_id), "MarkFailed")


@pytest.mark.parametrize(
    "target", [JobStatus.CREATED, JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.TIMEOUT]
)
def test_the_table_refuses_any_status_change_out_of_completed(
    stack: LocalStack, jobs: DynamoJobStore, completed_job_id: str, target: JobStatus
) -> None:
    # The DynamoDB condition itself, not only the handlers' early returns.
    before = job_item(stack, completed_job_id)

    assert jobs.transition(completed_job_id, target) is None
    assert job_item(stack, completed_job_id) == before


def test_store_outputs_never_completes_a_failed_job(stack: LocalStack, jobs: DynamoJobStore) -> None:
    job = recorded_job(jobs, JobStatus.FAILED, upstream_outputs=two_outputs())

    out = stack.invoke("StoreOutputsFunction", event("store_outputs", job_id=job.job_id))

    assert out == {"job_id": job.job_id, "status": "failed"}
    assert output_objects(stack, job.job_id) == {}
    assert job_item(stack, job.job_id)["status"] == "failed"  # type: ignore[index]


# --------------------------------------------------------------------------- store outputs
def test_store_outputs_run_twice_keeps_one_set_of_objects(stack: LocalStack, jobs: DynamoJobStore) -> None:
    # Given a job whose upstream task completed with two images
    job = recorded_job(jobs, JobStatus.PROCESSING, upstream_outputs=two_outputs())
    sample = event("store_outputs", job_id=job.job_id)

    # When store_outputs runs, and runs again as a retried Lambda whose status write was lost
    first = stack.invoke("StoreOutputsFunction", sample)
    stored = output_objects(stack, job.job_id)
    jobs.update(job.job_id, status=JobStatus.PROCESSING)
    second = stack.invoke("StoreOutputsFunction", sample)
    third = stack.invoke("StoreOutputsFunction", sample)

    # Then there is exactly one set of objects, with the same content, and the job is completed
    assert first == second == third == {"job_id": job.job_id, "status": "completed"}
    assert sorted(stored) == [f"outputs/{job.job_id}/0.png", f"outputs/{job.job_id}/1.png"]
    assert output_objects(stack, job.job_id) == stored
    item = job_item(stack, job.job_id)
    assert item is not None
    assert [o["key"] for o in item["outputs"]] == sorted(stored)
    assert [(o["width"], o["height"], o["content_type"]) for o in item["outputs"]] == [
        (320, 256, "image/png")
    ] * 2


def test_store_outputs_keeps_outputs_of_another_size_and_records_it(
    stack: LocalStack, jobs: DynamoJobStore
) -> None:
    job = recorded_job(jobs, JobStatus.PROCESSING, upstream_outputs=[png_base64(64, 48, "red")] * 2)

    out = stack.invoke("StoreOutputsFunction", event("store_outputs", job_id=job.job_id))

    assert out["status"] == "completed"
    item = job_item(stack, job.job_id)
    assert item is not None
    assert [(o["width"], o["height"]) for o in item["outputs"]] == [(64, 48), (64, 48)]  # not 320x256
    assert len(output_objects(stack, job.job_id)) == 2


# --------------------------------------------------------------------------- mark failed
def test_mark_failed_records_the_error_message_from_the_lambda_cause(
    stack: LocalStack, jobs: DynamoJobStore
) -> None:
    job = recorded_job(jobs, JobStatus.PROCESSING)
    sample = event("mark_failed", job_id=job.job_id)

    out = stack.invoke("MarkFailedFunction", sample)

    assert out == {"job_id": job.job_id, "status": "failed"}
    item = job_item(stack, job.job_id)
    assert item is not None
    assert item["error"]["type"] == "OutputUnavailableError"
    assert item["error"]["message"] == json.loads(sample["error"]["Cause"])["errorMessage"]
    assert "stackTrace" not in json.dumps(item["error"])
    assert "/var/task" not in item["error"]["message"]


@pytest.mark.parametrize("cause", ["", "Task timed out after 30.00 seconds", '{"errorType": "X"}'])
def test_mark_failed_without_a_readable_cause_names_the_failed_step(
    stack: LocalStack, jobs: DynamoJobStore, cause: str
) -> None:
    job = recorded_job(jobs, JobStatus.PROCESSING)

    stack.invoke(
        "MarkFailedFunction",
        event("mark_failed", job_id=job.job_id, error={"Error": "States.Timeout", "Cause": cause}),
    )

    item = job_item(stack, job.job_id)
    assert item is not None
    assert item["status"] == "failed"
    assert item["error"]["message"] == "the workflow step failed (States.Timeout)"


# --------------------------------------------------------------------------- notify
def test_notify_publishes_the_job_event_once_across_repeated_invocations(
    stack: LocalStack, jobs: DynamoJobStore
) -> None:
    job = recorded_job(jobs, JobStatus.COMPLETED)
    sample = event("notify", job_id=job.job_id)

    with sns_queue(stack) as drain:
        outcomes = [stack.invoke("NotifyFunction", sample) for _ in range(3)]
        (published,) = wait_for(lambda: sns_events_for(drain, job.job_id), what="the job event")
        # moto delivers SNS → SQS synchronously: anything a repeat had published is there now.
        assert len(sns_events_for(drain, job.job_id)) == 1

    assert [o["webhook"] for o in outcomes] == ["none"] * 3
    assert published["status"] == "completed"
    assert published["attributes"] == {"status": "completed", "owner": OWNER, "source": "api"}
    assert job_item(stack, job.job_id)["sns_published"] is True  # type: ignore[index]


def test_notify_delivers_the_webhook_once_across_repeated_invocations(
    stack: LocalStack, jobs: DynamoJobStore
) -> None:
    container().webhook_secrets.current(OWNER)  # as the API does before accepting a webhook URL
    with WebhookReceiver() as hook, sns_queue(stack) as drain:
        job = recorded_job(jobs, JobStatus.FAILED, webhook=hook.url)
        sample = event("notify", job_id=job.job_id)
        outcomes = [stack.invoke("NotifyFunction", sample) for _ in range(3)]
        deliveries = list(hook.deliveries)
        published = sns_events_for(drain, job.job_id)

    assert [o["webhook"] for o in outcomes] == ["delivered"] * 3
    assert hook.attempts == 1
    assert len(deliveries) == 1
    assert deliveries[0].json()["id"] == job.job_id
    assert len(published) == 1


def test_notify_refuses_a_job_that_has_not_finished(stack: LocalStack, jobs: DynamoJobStore) -> None:
    job = recorded_job(jobs, JobStatus.PROCESSING)
    with pytest.raises(JobStateError, match="not finished"):
        stack.invoke("NotifyFunction", event("notify", job_id=job.job_id))
    assert job_item(stack, job.job_id)["sns_published"] is False  # type: ignore[index]


def test_park_job_stores_the_wait_token_on_a_running_job(stack: LocalStack, jobs: DynamoJobStore) -> None:
    job = recorded_job(jobs, JobStatus.PROCESSING)
    sample = event("park_job", job_id=job.job_id)
    assert stack.invoke("ParkJobFunction", sample) == {"job_id": job.job_id, "woken": False}
    assert (job_item(stack, job.job_id) or {})["wake_token"] == sample["token"]
