"""Cancel and deadlines: `POST /api/v3/predictions/{id}/cancel` and the `Cancel-After` header.

A job waiting for its img2img upload is never sent upstream: cancelling it is free and its
answer is exact. Jobs that reach the upstream use a `[hang]` prompt, which the WaveSpeed stand-in
never finishes; a real upstream finishes it like any prompt, so against a deployed stack those
tests also accept the answers of a job that finished first.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.acceptance.checks import BODY, JOB_TIMEOUT, FinishedJob, Hooks
from tests.acceptance.target import Target
from tests.support.stack import Api

HANG = {**BODY, "prompt": "a lighthouse at dusk, watercolor [hang]"}


def cancel(caller: Api, job_id: str) -> Any:
    return caller.post(f"/api/v3/predictions/{job_id}/cancel")


def waiting_job(caller: Api, webhook: str | None = None) -> str:
    ticket = caller.post(
        "/api/v3/img2img/uploads",
        json={**BODY, "content_type": "image/jpeg"},
        params={"webhook": webhook} if webhook else None,
    )
    assert ticket.status_code == 200, ticket.text
    return str(ticket.json()["data"]["id"])


def test_a_job_never_sent_upstream_is_cancelled_unbilled(alice: Api) -> None:
    job_id = waiting_job(alice)

    answer = cancel(alice, job_id)

    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert (data["id"], data["status"], data["error_type"], data["retryable"]) == (
        job_id,
        "cancelled",
        "cancelled",
        False,
    )
    assert "nothing is billed" in data["error"]
    assert alice.result(job_id).json()["data"]["status"] == "cancelled"
    # Cancelled is final: a second cancel is a 409 that names the status.
    again = cancel(alice, job_id)
    assert again.status_code == 409, again.text
    assert again.json() == {"code": 409, "message": again.json()["message"], "data": None}
    assert "cancelled" in again.json()["message"]


def test_a_finished_job_cannot_be_cancelled(alice: Api, finished_job: FinishedJob) -> None:
    answer = cancel(alice, finished_job.id)

    assert answer.status_code == 409, answer.text
    assert "its status is completed" in answer.json()["message"]
    assert alice.result(finished_job.id).json()["data"]["status"] == "completed"


def test_a_running_job_is_cancelled_and_the_answer_says_the_upstream_may_bill_it(
    target: Target, alice: Api
) -> None:
    submitted = alice.submit(HANG)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["data"]["id"]

    answer = cancel(alice, job_id)

    if target.deployed and answer.status_code == 409:
        return  # the real upstream finished first; the 409 case is tested above
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert (data["status"], data["error_type"]) == ("cancelled", "cancelled")
    assert "may still bill" in data["error"]
    assert alice.wait_finished(job_id, timeout=JOB_TIMEOUT)["status"] == "cancelled"


def test_a_cancelled_job_is_notified_to_its_webhook(webhook_caller: Api, hooks: Hooks) -> None:
    job_id = waiting_job(webhook_caller, webhook=hooks.url)

    assert cancel(webhook_caller, job_id).status_code == 200

    payload = hooks.receiver.wait_for_job(job_id, timeout=JOB_TIMEOUT).json()
    assert (payload["id"], payload["status"], payload["error_type"]) == (job_id, "cancelled", "cancelled")


def test_nobody_can_cancel_another_owners_job(alice: Api, bob: Api) -> None:
    job_id = waiting_job(alice)

    theirs = cancel(bob, job_id)
    unknown = cancel(bob, uuid.uuid4().hex)

    assert theirs.status_code == 404, theirs.text
    assert theirs.json() == unknown.json()
    assert alice.result(job_id).json()["data"]["status"] == "created"
    assert cancel(Api(alice.base_url, None), job_id).status_code == 401


def test_cancel_after_ends_an_unfinished_job_as_timeout(target: Target, alice: Api) -> None:
    submitted = alice.submit(HANG, headers={"Cancel-After": "1s"})
    assert submitted.status_code == 200, submitted.text

    data = alice.wait_finished(submitted.json()["data"]["id"], timeout=JOB_TIMEOUT)

    if target.deployed and data["status"] == "completed":
        return  # the real upstream was faster than one second
    assert (data["status"], data["error_type"]) == ("timeout", "timeout"), data
    assert data["error"] == "the job did not finish within its Cancel-After of 1 s"


def test_a_bad_cancel_after_is_a_400_naming_the_header(alice: Api) -> None:
    answer = alice.submit(BODY, headers={"Cancel-After": "soon"})

    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith("Cancel-After must be a duration")
