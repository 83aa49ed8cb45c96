"""Safe in front of paying users, over real HTTP against the local stack (development
URL policy): idempotency, per-key limits, the SSRF guard at submit, owner isolation on every
route, no secret in any log line, webhook secret rotation.

Strict-policy rules live in test_safety_strict.py, the global upstream cap in
test_safety_upstream_cap.py (each needs its own stack)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, WebhookReceiver, api_for, function_log_lines, wait_for

pytestmark = pytest.mark.e2e

SUBMIT = "/api/v3/wavespeed-ai/flux-schnell-lora"


# --------------------------------------------------------------------------- helpers
def tag() -> str:
    """A marker put in a prompt, to find this test's submissions at the stand-in."""
    return f"t{uuid.uuid4().hex[:12]}"


def submissions(stack: LocalStack, marker: str) -> list[dict[str, Any]]:
    seen = httpx.get(f"{stack.upstream_url}/_standin/submissions").json()["data"]
    return [s for s in seen if marker in s["input"]["prompt"]]


def set_faults(stack: LocalStack, **faults: Any) -> None:
    httpx.post(f"{stack.upstream_url}/_standin/faults", json=faults).raise_for_status()


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    return dict(body)


def away_from_a_minute_boundary() -> None:
    """Per-minute counters roll over at :00; start a burst that must land in one minute early
    enough in it (a bounded wait on the clock, not a race)."""
    wait_for(lambda: datetime.now(UTC).second < 50, timeout=15, interval=0.2, what="a fresh minute")


# --------------------------------------------------------------------------- idempotency
def test_a_retry_with_the_same_key_and_body_replays_the_job_and_submits_once(
    stack: LocalStack, alice: Api
) -> None:
    marker, key = tag(), str(uuid.uuid4())
    body = {"prompt": f"a harbour {marker}", "size": "512*512"}

    first = alice.submit(body, headers={"Idempotency-Key": key})
    again = alice.submit(body, headers={"Idempotency-Key": key})

    assert_envelope(first, 200)
    assert_envelope(again, 200)
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(submissions(stack, marker)) == 1
    assert alice.wait_finished(first.json()["data"]["id"])["status"] == "completed"
    assert len(submissions(stack, marker)) == 1


def test_the_same_key_with_another_body_is_refused_with_422(stack: LocalStack, alice: Api) -> None:
    marker, key = tag(), str(uuid.uuid4())
    assert alice.submit({"prompt": f"one {marker}"}, headers={"Idempotency-Key": key}).status_code == 200

    other = alice.submit({"prompt": f"two {marker}"}, headers={"Idempotency-Key": key})
    other_webhook = alice.submit(
        {"prompt": f"one {marker}"}, webhook="http://127.0.0.1:9/x", headers={"Idempotency-Key": key}
    )

    assert "different request body" in assert_envelope(other, 422)["message"]
    assert_envelope(other_webhook, 422)
    assert len(submissions(stack, marker)) == 1


def test_an_idempotency_key_longer_than_255_characters_is_a_400(alice: Api) -> None:
    refused = alice.submit({"prompt": "x"}, headers={"Idempotency-Key": "k" * 256})
    assert "Idempotency-Key" in assert_envelope(refused, 400)["message"]


def test_a_concurrent_duplicate_while_the_first_is_in_flight_is_a_409_with_retry_after(
    stack: LocalStack, alice: Api
) -> None:
    marker, key = tag(), str(uuid.uuid4())
    body = {"prompt": f"slow {marker}"}
    set_faults(stack, submit_hang=1, submit_hang_seconds=3.0)  # the stand-in answers 3 s late
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            lambda: Api(alice.base_url, alice.key).submit(body, headers={"Idempotency-Key": key})
        )
        # The first request has reached the (paid) upstream and waits for its answer.
        wait_for(lambda: submissions(stack, marker), timeout=10, what="the first submit upstream")
        duplicate = alice.submit(body, headers={"Idempotency-Key": key})
        original = first.result(timeout=30)

    assert_envelope(duplicate, 409)
    assert int(duplicate.headers["Retry-After"]) >= 1
    assert_envelope(original, 200)
    replay = alice.submit(body, headers={"Idempotency-Key": key})
    assert replay.json()["data"]["id"] == original.json()["data"]["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(submissions(stack, marker)) == 1


def test_idempotency_keys_are_scoped_per_owner(stack: LocalStack, alice: Api, bob: Api) -> None:
    marker, key = tag(), str(uuid.uuid4())
    body = {"prompt": f"shared key {marker}"}

    mine = alice.submit(body, headers={"Idempotency-Key": key})
    theirs = bob.submit(body, headers={"Idempotency-Key": key})

    assert_envelope(mine, 200)
    assert_envelope(theirs, 200)
    assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
    assert "idempotent-replayed" not in theirs.headers
    assert len(submissions(stack, marker)) == 2
    assert bob.result(mine.json()["data"]["id"]).status_code == 404


def test_img2img_upload_tickets_are_idempotent_too(alice: Api, bob: Api) -> None:
    key = str(uuid.uuid4())
    body = {"prompt": f"img2img {tag()}", "content_type": "image/png"}

    first = alice.post("/api/v3/img2img/uploads", json=body, headers={"Idempotency-Key": key})
    again = alice.post("/api/v3/img2img/uploads", json=body, headers={"Idempotency-Key": key})
    changed = alice.post(
        "/api/v3/img2img/uploads", json={**body, "prompt": "other"}, headers={"Idempotency-Key": key}
    )
    bobs = bob.post("/api/v3/img2img/uploads", json=body, headers={"Idempotency-Key": key})

    ticket = assert_envelope(first, 200)["data"]
    assert assert_envelope(again, 200)["data"]["id"] == ticket["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_envelope(changed, 422)
    assert assert_envelope(bobs, 200)["data"]["id"] != ticket["id"]
    assert f"img2img/alice/{ticket['id']}" in ticket["upload"]["url"]
    assert bob.result(ticket["id"]).status_code == 404


# --------------------------------------------------------------------------- limits
def test_requests_per_minute_over_the_limit_is_a_429_and_nothing_is_sent_upstream(
    stack: LocalStack,
) -> None:
    caller = api_for(stack, "limited-rpm", requests_per_minute=2)
    marker = tag()
    away_from_a_minute_boundary()

    answers = [caller.submit({"prompt": f"n{i} {marker}"}) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = assert_envelope(answers[2], 429)
    assert "2 requests per minute" in refused["message"]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert len(submissions(stack, marker)) == 2


def test_the_daily_image_quota_refuses_a_request_that_would_exceed_it(stack: LocalStack) -> None:
    caller = api_for(stack, "limited-images", images_per_day=3)
    marker = tag()

    first = caller.submit({"prompt": f"a {marker}", "num_images": 2})
    second = caller.submit({"prompt": f"b {marker}", "num_images": 2})

    assert_envelope(first, 200)
    assert "daily quota of 3 images" in assert_envelope(second, 429)["message"]
    assert int(second.headers["Retry-After"]) >= 1
    assert len(submissions(stack, marker)) == 1
    assert caller.submit({"prompt": f"c {marker}", "num_images": 1}).status_code == 200


def test_img2img_by_upload_counts_against_the_same_image_quota(stack: LocalStack) -> None:
    caller = api_for(stack, "limited-uploads", images_per_day=3)
    body = {"prompt": "a watercolor", "num_images": 2}

    first = caller.post("/api/v3/img2img/uploads", json=body)
    second = caller.post("/api/v3/img2img/uploads", json=body)

    assert_envelope(first, 200)
    assert "daily quota of 3 images" in assert_envelope(second, 429)["message"]


def test_concurrent_requests_never_exceed_the_rate_limit(stack: LocalStack) -> None:
    limit, callers = 4, 12
    caller = api_for(stack, "limited-burst", requests_per_minute=limit)
    marker = tag()
    away_from_a_minute_boundary()
    barrier = threading.Barrier(callers)

    def one(i: int) -> int:
        api = Api(caller.base_url, caller.key)
        barrier.wait()
        return api.submit({"prompt": f"burst {i} {marker}"}).status_code

    with ThreadPoolExecutor(callers) as pool:
        statuses = list(pool.map(one, range(callers)))

    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == callers - limit, statuses
    assert len(submissions(stack, marker)) == limit


# --------------------------------------------------------------------------- SSRF at submit
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/x", "private address"),
        ("https://169.254.169.254/latest", "metadata"),
        ("http://93.184.215.14/x", "https"),  # public, but http is only for loopback in development
        ("https://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("https://167772161/x", "private address (10.0.0.1)"),  # decimal spelling of 10.0.0.1
        ("https://2130706433/x", "non-canonical"),  # decimal spelling of 127.0.0.1
        ("https://0x7f.1/x", "127.0.0.1"),
        ("https://100.64.0.1/x", "address"),  # CGNAT
        ("https://user:pw@example.com/x", "credentials"),
        ("ftp://example.com/x", "https"),
    ],
)
def test_an_unsafe_webhook_url_is_refused_at_submit_with_the_reason(
    stack: LocalStack, alice: Api, url: str, reason: str
) -> None:
    marker = tag()
    refused = alice.submit({"prompt": f"ssrf {marker}"}, webhook=url)

    assert reason in assert_envelope(refused, 400)["message"]
    assert submissions(stack, marker) == []


# --------------------------------------------------------------------------- owners
def test_someone_elses_job_is_indistinguishable_from_an_unknown_id(alice: Api, bob: Api) -> None:
    job_id = alice.submit({"prompt": "alice's private picture"}).json()["data"]["id"]
    unknown = uuid.uuid4().hex

    for method, path in (
        ("GET", "/api/v3/predictions/{}/result"),
        ("GET", "/api/v3/predictions/{}"),
        ("GET", "/api/v3/predictions/{}/webhooks"),
        ("POST", "/api/v3/predictions/{}/webhooks/redeliver"),
    ):
        call = bob.get if method == "GET" else bob.post
        theirs = call(path.format(job_id))
        missing = call(path.format(unknown))
        assert_envelope(theirs, 404)
        assert theirs.json() == missing.json()
        assert job_id not in theirs.text
        if method == "GET":
            assert alice.get(path.format(job_id)).status_code == 200
        assert (alice.get if method == "GET" else alice.post)(path.format(unknown)).json() == missing.json()
        assert call(path.format("../" + job_id)).status_code in (400, 404)


def test_no_route_answers_without_a_valid_key(stack: LocalStack) -> None:
    nobody, forged = Api(stack.api_url, None), Api(stack.api_url, "fr_" + "x" * 40)
    for caller in (nobody, forged):
        assert_envelope(caller.submit({"prompt": "x"}), 401)
        assert_envelope(caller.get(f"/api/v3/predictions/{uuid.uuid4().hex}/result"), 401)
        assert_envelope(caller.get("/api/v3/webhook/secret"), 401)
        assert_envelope(caller.post("/api/v3/webhook/secret/rotate"), 401)
        assert_envelope(caller.get(f"/api/v3/predictions/{uuid.uuid4().hex}/webhooks"), 401)
        assert_envelope(caller.post(f"/api/v3/predictions/{uuid.uuid4().hex}/webhooks/redeliver"), 401)
        assert_envelope(caller.post("/api/v3/webhooks/redeliver", json={}), 401)
        assert_envelope(
            caller.post(
                "/api/v3/media/uploads", json={"filename": "a.png", "size": 10, "content_type": "image/png"}
            ),
            401,
        )
        assert_envelope(caller.post("/api/v3/img2img/uploads", json={"prompt": "x"}), 401)
        assert_envelope(caller.get("/api/v3/predictions"), 401)
        assert_envelope(caller.post(f"/api/v3/predictions/{uuid.uuid4().hex}/cancel"), 401)
        assert_envelope(caller.post("/api/v3/predictions", json={"page": 1, "page_size": 10}), 401)


def test_without_allowed_origins_there_is_no_cors(stack: LocalStack, alice: Api) -> None:
    preflight = httpx.options(
        f"{stack.api_url}/api/v3/predictions",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    answer = alice.get("/api/v3/predictions", headers={"Origin": "https://app.example.com"})

    assert_envelope(preflight, 404)
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in answer.headers


def test_each_owner_has_their_own_webhook_secret_and_rotation(stack: LocalStack) -> None:
    carol, dave = api_for(stack, "carol"), api_for(stack, "dave")
    carols = assert_envelope(carol.get("/api/v3/webhook/secret"), 200)["data"]["secret"]
    daves = assert_envelope(dave.get("/api/v3/webhook/secret"), 200)["data"]["secret"]

    assert carols.startswith("whsec_")
    assert daves.startswith("whsec_")
    assert carols != daves
    assert carol.get("/api/v3/webhook/secret").json()["data"]["secret"] == carols
    assert_envelope(dave.post("/api/v3/webhook/secret/rotate"), 200)
    assert carol.get("/api/v3/webhook/secret").json()["data"]["secret"] == carols


def test_upload_keys_are_owner_prefixed(alice: Api, bob: Api) -> None:
    announce = {"filename": "cat.png", "size": 1234, "content_type": "image/png"}
    alices = assert_envelope(alice.post("/api/v3/media/uploads", json=announce), 200)["data"]
    bobs = assert_envelope(bob.post("/api/v3/media/uploads", json=announce), 200)["data"]

    assert "/uploads/alice/" in alices["upload"]["url"]
    assert "/uploads/alice/" in alices["download_url"]
    assert "/uploads/bob/" in bobs["upload"]["url"]
    assert "/uploads/alice/" not in bobs["upload"]["url"]
    # A filename cannot climb out of the owner's prefix.
    sneaky = bob.post("/api/v3/media/uploads", json={**announce, "filename": "../alice/cat.png"})
    assert_envelope(sneaky, 400)


# --------------------------------------------------------------------------- hostile bodies
def jobs_of(stack: LocalStack, owner: str) -> list[dict[str, Any]]:
    pages = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.table,
            FilterExpression="begins_with(pk, :job) AND #owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":job": {"S": "JOB#"}, ":owner": {"S": owner}},
        )
    )
    return [item for page in pages for item in page["Items"]]


def test_hostile_bodies_are_refused_before_any_job_or_upstream_call(stack: LocalStack) -> None:
    caller = api_for(stack, "hostile")
    marker = tag()
    deep = "[" * 100_000 + "]" * 100_000
    json_type = {"Content-Type": "application/json"}
    cases = [
        (f'[{{"prompt": "{marker}"}}]', json_type, 400, "the body must be a single JSON object"),
        (deep, json_type, 400, "the body is nested too deeply"),
        (f'{{"prompt": "{marker}", "loras": {deep}}}', json_type, 400, "the body is nested too deeply"),
        (f'{{"prompt": "{marker}\\u0000"}}', json_type, 400, "prompt must not contain control characters"),
        (f'{{"prompt": "{marker}", "num_images": 1, "num_images": 4}}', json_type, 400, "appears twice"),
        (f"prompt={marker}", json_type, 400, "the body is not valid JSON"),
        # curl -d without a content type: form encoding, whatever the body holds.
        (f"prompt={marker}", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        (
            f'{{"prompt": "{marker}"}}',
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "application/json",
        ),
        (f"prompt={marker}", {"Content-Type": "multipart/form-data; boundary=x"}, 415, "application/json"),
    ]
    for body, headers, status, message in cases:
        response = caller.post(SUBMIT, content=body.encode(), headers=headers)
        answer = assert_envelope(response, status)
        assert message in answer["message"], (body[:80], answer)
        assert answer["data"] is None

    upstream = httpx.get(f"{stack.upstream_url}/_standin/requests").json()["data"]
    assert marker not in json.dumps(upstream)
    assert jobs_of(stack, "hostile") == []
    # The same caller's well-formed body still goes through, so the refusals were the bodies'.
    accepted = caller.submit({"prompt": f"{marker} fine", "size": "256*256"})
    assert_envelope(accepted, 200)
    assert len(jobs_of(stack, "hostile")) == 1


# --------------------------------------------------------------------------- logs
class _Everything(logging.Handler):
    """Keeps every record with all its attributes (message, args, extras, exception text)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose args do not fit its message is still inspected
            text = str(record.msg)
        self.lines.append(f"{text} {record.__dict__!r} {record.exc_text or ''}")


class _Tee(io.TextIOBase):
    def __init__(self, inner: Any, sink: io.StringIO) -> None:
        self._inner, self._sink = inner, sink

    def write(self, text: str) -> int:
        self._sink.write(text)
        try:
            return int(self._inner.write(text))
        except ValueError:  # the original stream was closed by a capture fixture
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):
            self._inner.flush()


def test_a_full_job_logs_no_api_key_no_wavespeed_key_and_no_webhook_secret(
    stack: LocalStack, capfd: pytest.CaptureFixture[str]
) -> None:
    caller = api_for(stack, "logwatch")
    wavespeed_key = stack.client("secretsmanager").get_secret_value(
        SecretId=stack.info["wavespeed_secret_name"]
    )["SecretString"]
    assert wavespeed_key

    everything, streamed = _Everything(), io.StringIO()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    # At the levels the stack runs with (what a deployed function would emit), every logger.
    for lg in loggers:
        lg.addHandler(everything)
        for handler in lg.handlers:
            if isinstance(handler, logging.StreamHandler) and handler is not everything:
                swapped.append((handler, handler.setStream(_Tee(handler.stream, streamed))))
    try:
        with WebhookReceiver() as receiver:
            secret = caller.get("/api/v3/webhook/secret").json()["data"]["secret"]
            submitted = caller.submit(
                {"prompt": "a quiet street", "size": "512*512"},
                webhook=receiver.url,
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert submitted.status_code == 200, submitted.text
            job_id = submitted.json()["data"]["id"]
            assert caller.wait_finished(job_id)["status"] == "completed"
            (delivery,) = receiver.wait(1)
            Webhook(secret).verify(delivery.body, delivery.headers)
            print("", flush=True)
            sys.stderr.flush()
    finally:
        for handler, original in swapped:
            handler.setStream(original)
        for lg in loggers:
            lg.removeHandler(everything)
    out, err = capfd.readouterr()

    logged = "\n".join([*everything.lines, streamed.getvalue(), out, err])
    # The capture saw the functions' own (Powertools JSON) lines, or it would prove nothing.
    assert job_id in logged
    assert "job submitted" in logged
    assert caller.key
    for name, value in (
        ("API key", caller.key),
        ("WaveSpeed key", wavespeed_key),
        ("webhook secret", secret),
    ):
        assert value not in logged, f"the {name} appears in the logs"
        # The secret part alone (without its prefix) must not appear either.
        assert value.split("_", 1)[-1] not in logged, f"the {name} appears in the logs"


def test_each_request_is_logged_under_its_own_caller_only(stack: LocalStack) -> None:
    caller = api_for(stack, "logged-caller")
    anonymous = Api(stack.api_url, None)
    unknown = "/api/v3/predictions/" + "0" * 32

    with function_log_lines() as lines:
        assert_envelope(caller.get(unknown), 404)
        first = lines()
        assert_envelope(anonymous.get(unknown), 401)
        second = lines()[len(first) :]

    # The caller's refusal is logged under its owner; the next request's lines know nothing of it.
    assert any(line.get("owner") == "logged-caller" for line in first)
    refused = [line for line in second if line["message"] == "request refused"]
    assert refused
    for line in second:
        assert "owner" not in line, line
        assert "key_id" not in line, line


# --------------------------------------------------------------------------- rotation
def test_after_a_rotation_the_next_delivery_is_signed_with_both_secrets(stack: LocalStack) -> None:
    caller = api_for(stack, "rotator")
    old = caller.get("/api/v3/webhook/secret").json()["data"]["secret"]

    rotated = assert_envelope(caller.post("/api/v3/webhook/secret/rotate"), 200)["data"]
    new = rotated["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert rotated["previous_valid_until"] > time.time()
    assert caller.get("/api/v3/webhook/secret").json()["data"]["secret"] == new

    with WebhookReceiver() as receiver:
        job_id = caller.submit({"prompt": "rotation"}, webhook=receiver.url).json()["data"]["id"]
        (delivery,) = receiver.wait(1)

    headers = {k.lower(): v for k, v in delivery.headers.items()}
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (old, new):
        assert Webhook(secret).verify(delivery.body, headers)["id"] == job_id
    assert json.loads(delivery.body)["id"] == job_id
