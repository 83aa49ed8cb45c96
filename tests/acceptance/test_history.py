"""History: WaveSpeed's list call (`POST /api/v3/predictions`, page and total) and the cursor
listing (`GET /api/v3/predictions`), each caller's own jobs only, newest first.

The listed jobs are img2img-by-upload tickets whose photo never comes: real jobs of their owner
that are never sent upstream, so these tests generate nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.acceptance.checks import BODY, FinishedJob
from tests.support.stack import Api


def waiting_job(caller: Api) -> str:
    ticket = caller.post("/api/v3/img2img/uploads", json={**BODY, "content_type": "image/jpeg"})
    assert ticket.status_code == 200, ticket.text
    return str(ticket.json()["data"]["id"])


def envelope(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == status
    return body["data"] if status == 200 else body["message"]


@pytest.fixture(scope="module")
def historian(new_api: Callable[..., Api]) -> tuple[Api, list[str]]:
    """A new owner with three jobs, oldest first."""
    caller = new_api("historian")
    return caller, [waiting_job(caller) for _ in range(3)]


def test_the_list_call_pages_the_callers_jobs_newest_first_with_the_total(
    historian: tuple[Api, list[str]],
) -> None:
    caller, (first, second, third) = historian

    page1 = envelope(caller.post("/api/v3/predictions", json={"page": 1, "page_size": 2}))
    page2 = envelope(caller.post("/api/v3/predictions", json={"page": 2, "page_size": 2}))

    assert (page1["page"], page1["total"]) == (1, 3)
    assert [p["id"] for p in page1["items"]] == [third, second]
    assert (page2["page"], page2["total"], [p["id"] for p in page2["items"]]) == (2, 3, [first])
    item = page1["items"][0]
    assert item["status"] == "created"
    assert item["urls"]["get"].endswith(f"/api/v3/predictions/{third}/result")


def test_the_cursor_listing_reaches_every_job_once_and_ends(historian: tuple[Api, list[str]]) -> None:
    caller, (first, second, third) = historian

    head = envelope(caller.get("/api/v3/predictions", params={"limit": 2}))
    tail = envelope(caller.get("/api/v3/predictions", params={"limit": 2, "cursor": head["next_cursor"]}))

    assert [p["id"] for p in head["items"]] == [third, second]
    assert head["next_cursor"]
    assert [p["id"] for p in tail["items"]] == [first]
    assert tail["next_cursor"] is None


def test_filters_select_by_status_and_creation_time(alice: Api, finished_job: FinishedJob) -> None:
    created_at = finished_job.data["created_at"]
    around = {"created_after": created_at, "created_before": created_at}

    completed = envelope(alice.post("/api/v3/predictions", json={"status": "completed", **around}))
    failed = envelope(alice.get("/api/v3/predictions", params={"status": "failed", **around}))
    later = envelope(alice.get("/api/v3/predictions", params={"created_after": "2999-01-01"}))

    assert [p["id"] for p in completed["items"]] == [finished_job.id]
    assert completed["total"] == 1
    assert completed["items"][0]["outputs"]
    assert failed["items"] == []
    assert later == {"items": [], "next_cursor": None}


def test_nobody_sees_another_owners_jobs_not_even_with_their_cursor(
    historian: tuple[Api, list[str]], new_api: Callable[..., Api]
) -> None:
    caller, jobs = historian
    stranger = new_api("stranger")
    theirs = waiting_job(stranger)
    cursor = envelope(caller.get("/api/v3/predictions", params={"limit": 1}))["next_cursor"]

    listed = envelope(stranger.get("/api/v3/predictions", params={"cursor": cursor}))
    paged = envelope(stranger.post("/api/v3/predictions", json={"page": 1, "page_size": 100}))

    assert {p["id"] for p in listed["items"]} <= {theirs}
    assert [p["id"] for p in paged["items"]] == [theirs]
    assert paged["total"] == 1
    assert not set(jobs) & {p["id"] for p in paged["items"]}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda api: api.post("/api/v3/predictions", json={"page_size": 101}), "page_size"),
        (lambda api: api.post("/api/v3/predictions", json={"page": 0}), "page"),
        (lambda api: api.post("/api/v3/predictions", json={"status": "done"}), "status"),
        (lambda api: api.post("/api/v3/predictions", json={"created_after": "monday"}), "created_after"),
        (lambda api: api.post("/api/v3/predictions", json={"pagesize": 5}), "pagesize"),
        (lambda api: api.get("/api/v3/predictions", params={"limit": "lots"}), "limit"),
        (lambda api: api.get("/api/v3/predictions", params={"cursor": "made-up"}), "cursor"),
        (
            lambda api: api.get(
                "/api/v3/predictions", params={"created_after": "2026-12-02", "created_before": "2026-12-01"}
            ),
            "created_before",
        ),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(alice: Api, call: Callable[[Api], Any], field: str) -> None:
    message = envelope(call(alice), 400)
    assert message.startswith(field) or f"'{field}'" in message, message


def test_history_needs_a_key(alice: Api) -> None:
    nobody = Api(alice.base_url, None)
    assert envelope(nobody.get("/api/v3/predictions"), 401)
    assert envelope(nobody.post("/api/v3/predictions", json={"page": 1, "page_size": 10}), 401)
