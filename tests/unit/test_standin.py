"""The WaveSpeed stand-in's own behaviour, over real HTTP on port 0.

Timing uses a manual clock injected into the stand-in (no sleeping); webhook tests use a real
werkzeug receiver and wait on a threading.Event with a timeout.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from fluxrelay.adapters.wavespeed import verify_wavespeed_webhook
from fluxrelay_local.standin import StandIn

API_KEY = "standin-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SUBMIT = "/api/v3/wavespeed-ai/flux-schnell-lora"


class ManualClock:
    def __init__(self) -> None:
        self.now = 500.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def standin(clock: ManualClock) -> Iterator[StandIn]:
    with StandIn(
        api_key=API_KEY,
        seconds_per_image=2.0,
        queue_seconds=0.5,
        sync_timeout_seconds=10.0,
        clock=clock,
        sleep=clock.sleep,
    ) as server:
        yield server


@pytest.fixture
def http(standin: StandIn) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, timeout=5.0) as client:
        yield client


def submit(http: httpx.Client, body: dict[str, Any], **params: str) -> dict[str, Any]:
    response = http.post(SUBMIT, json=body, headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert (envelope["code"], envelope["message"]) == (200, "success")
    return envelope["data"]


def result(http: httpx.Client, task_id: str) -> dict[str, Any]:
    response = http.get(f"/api/v3/predictions/{task_id}/result", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["data"]


# --- submit ------------------------------------------------------------------------------------
def test_task_lifecycle_follows_the_configured_latency(
    standin: StandIn, http: httpx.Client, clock: ManualClock
) -> None:
    # Given a two-image task: 0.5 s queue + 2 x 2 s processing = 4.5 s
    task = submit(http, {"prompt": "a lighthouse", "num_images": 2})
    assert task["status"] == "created"
    timeline = {}
    for offset in (0.49, 0.5, 4.49, 4.5):
        clock.now = 500.0 + offset
        timeline[offset] = result(http, task["id"])["status"]
    assert timeline == {0.49: "created", 0.5: "processing", 4.49: "processing", 4.5: "completed"}
    assert standin.task_status(task["id"]) == "completed"


def test_prediction_has_the_upstream_shape(http: httpx.Client, clock: ManualClock) -> None:
    task = submit(http, {"prompt": "x"})
    clock.now += 100
    data = result(http, task["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", data["created_at"])
    assert data["model"] == "wavespeed-ai/flux-schnell-lora"
    assert data["urls"]["get"].endswith(f"/api/v3/predictions/{data['id']}/result")
    assert data["error"] == ""
    assert data["executionTime"] == data["timings"]["inference"] == 2000
    assert data["has_nsfw_contents"] == [False]


def test_result_is_served_on_both_paths_and_unknown_ids_are_404(http: httpx.Client) -> None:
    task = submit(http, {"prompt": "x"})
    short = http.get(f"/api/v3/predictions/{task['id']}", headers=AUTH).json()
    assert short["data"]["id"] == task["id"]
    missing = http.get(f"/api/v3/predictions/{'0' * 32}/result", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "message": missing.json()["message"], "data": None}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": API_KEY}])
def test_bad_or_missing_key_is_a_401_envelope(standin: StandIn, http: httpx.Client, headers: dict) -> None:
    response = http.post(SUBMIT, json={"prompt": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == 401
    assert response.json()["data"] is None
    assert standin.submissions == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": 3},
        {"prompt": "x", "size": "1024x1024"},
        {"prompt": "x", "size": "255*512"},
        {"prompt": "x", "size": "512*1537"},
        {"prompt": "x", "num_images": 0},
        {"prompt": "x", "num_images": 5},
        {"prompt": "x", "num_images": True},
        {"prompt": "x", "seed": -2},
        {"prompt": "x", "seed": 2_147_483_648},
        {"prompt": "x", "strength": 1.5},
        {"prompt": "x", "output_format": "gif"},
        {"prompt": "x", "loras": [{"path": "a/b", "scale": 1}] * 4},
        {"prompt": "x", "loras": [{"path": "a/b", "scale": 4.5}]},
        {"prompt": "x", "loras": [{"scale": 1.0}]},
        {"prompt": "x", "enable_sync_mode": "yes"},
    ],
)
def test_out_of_range_parameters_are_a_400_envelope(standin: StandIn, http: httpx.Client, body: dict) -> None:
    response = http.post(SUBMIT, json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert response.json()["message"]
    assert standin.submissions == []
    assert len(standin.received) == 1  # seen, but never became a (paid) task


def test_unknown_keys_are_dropped_and_defaults_applied(standin: StandIn, http: httpx.Client) -> None:
    submit(http, {"prompt": "x", "guidance_scale": 7, "num_inference_steps": 50})
    submission = standin.submissions[0]
    assert submission["dropped_keys"] == ["guidance_scale", "num_inference_steps"]
    assert "guidance_scale" not in submission["input"]
    assert submission["input"]["size"] == "1024*1024"
    assert submission["input"]["output_format"] == "jpeg"
    assert 0 <= submission["input"]["seed"] <= 2_147_483_647  # -1 became a concrete seed


def test_official_client_headers_are_ignored(standin: StandIn, http: httpx.Client) -> None:
    headers = {
        **AUTH,
        "X-Client-Name": "wavespeed-python",
        "X-Client-Version": "2.0.5",
        "X-Client-OS": "linux",
    }
    response = http.post(SUBMIT, json={"prompt": "x"}, headers=headers)
    assert response.status_code == 200
    assert standin.received[0]["headers"]["X-Client-Name"] == "wavespeed-python"


def test_sync_mode_returns_the_finished_prediction(http: httpx.Client, clock: ManualClock) -> None:
    data = submit(http, {"prompt": "x", "enable_sync_mode": True})
    assert data["status"] == "completed"
    assert len(data["outputs"]) == 1
    assert clock.now >= 500.0 + 2.5


@pytest.mark.parametrize(
    "body", [{"prompt": "[hang] x"}, {"prompt": "x", "num_images": 4, "size": "256*256"}]
)
def test_sync_mode_times_out_with_the_5004_shape(
    standin: StandIn, http: httpx.Client, clock: ManualClock, body: dict
) -> None:
    standin.seconds_per_image = 5.0  # 4 images: 20.5 s > the 10 s sync timeout
    data = submit(http, {**body, "enable_sync_mode": True})
    assert data["status"] == "processing"
    assert data["code"] == 5004
    assert "Sync mode timed out" in data["error"]
    assert clock.now == pytest.approx(510.0)
    assert result(http, data["id"])["status"] == "processing"  # the task keeps running


# --- images ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("output_format", "size", "pil_format", "content_type"),
    [
        ("jpeg", "1024*1024", "JPEG", "image/jpeg"),
        ("png", "256*512", "PNG", "image/png"),
        ("webp", "768*1536", "WEBP", "image/webp"),
    ],
)
def test_outputs_are_real_images_of_the_requested_size_and_format(
    http: httpx.Client, clock: ManualClock, output_format: str, size: str, pil_format: str, content_type: str
) -> None:
    task = submit(http, {"prompt": "x", "size": size, "output_format": output_format, "num_images": 2})
    clock.now += 100
    data = result(http, task["id"])
    assert [url.rsplit("/", 1)[1] for url in data["outputs"]] == [f"0.{output_format}", f"1.{output_format}"]
    width, height = (int(side) for side in size.split("*"))
    for url in data["outputs"]:
        response = httpx.get(url)
        assert response.headers["content-type"] == content_type
        image = Image.open(io.BytesIO(response.content))
        assert (image.format, image.size) == (pil_format, (width, height))


def _first_image(http: httpx.Client, clock: ManualClock, body: dict) -> bytes:
    task = submit(http, {"size": "256*256", "output_format": "png", **body})
    clock.now += 100
    return httpx.get(result(http, task["id"])["outputs"][0]).content


def test_images_are_deterministic_in_seed_and_prompt(http: httpx.Client, clock: ManualClock) -> None:
    first = _first_image(http, clock, {"prompt": "a cat", "seed": 42})
    again = _first_image(http, clock, {"prompt": "a cat", "seed": 42})
    other_prompt = _first_image(http, clock, {"prompt": "a dog", "seed": 42})
    other_seed = _first_image(http, clock, {"prompt": "a cat", "seed": 43})
    assert first == again
    assert len({first, other_prompt, other_seed}) == 3
    # Visibly different, not just a few bytes: compare pixels
    a = Image.open(io.BytesIO(first)).convert("L").tobytes()
    b = Image.open(io.BytesIO(other_prompt)).convert("L").tobytes()
    assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a) > 10


def test_base64_outputs_decode_to_images(http: httpx.Client, clock: ManualClock) -> None:
    task = submit(
        http,
        {
            "prompt": "x",
            "enable_base64_output": True,
            "size": "512*256",
            "output_format": "webp",
            "num_images": 3,
        },
    )
    clock.now += 100
    data = result(http, task["id"])
    assert len(data["outputs"]) == len(data["has_nsfw_contents"]) == 3
    for encoded in data["outputs"]:
        image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
        assert (image.format, image.size) == ("WEBP", (512, 256))


# --- faults ------------------------------------------------------------------------------------
def test_fault_submit_429_with_and_without_retry_after(standin: StandIn, http: httpx.Client) -> None:
    standin.faults.submit_429 = 1
    standin.faults.submit_429_retry_after = 7
    with_hint = http.post(SUBMIT, json={"prompt": "x"}, headers=AUTH)
    standin.faults.submit_429 = 1
    standin.faults.submit_429_retry_after = None
    without_hint = http.post(SUBMIT, json={"prompt": "x"}, headers=AUTH)
    after = http.post(SUBMIT, json={"prompt": "x"}, headers=AUTH)
    assert (with_hint.status_code, with_hint.headers["Retry-After"]) == (429, "7")
    assert without_hint.status_code == 429
    assert "Retry-After" not in without_hint.headers
    assert after.status_code == 200
    assert len(standin.submissions) == 1


def test_fault_submit_rejection_refuses_only_prompts_with_its_marker(
    standin: StandIn, http: httpx.Client
) -> None:
    standin.set_faults(submit_reject_marker="[refuse]", submit_reject_message="lora not found: a/b")
    refused = http.post(SUBMIT, json={"prompt": "please [refuse] me"}, headers=AUTH)
    accepted = http.post(SUBMIT, json={"prompt": "fine"}, headers=AUTH)
    assert refused.status_code == 422
    assert refused.json() == {"code": 422, "message": "lora not found: a/b", "data": None}
    assert accepted.status_code == 200
    assert [s["input"]["prompt"] for s in standin.submissions] == ["fine"]
    standin.clear_faults()
    assert http.post(SUBMIT, json={"prompt": "[refuse] again"}, headers=AUTH).status_code == 200


def test_task_view_reports_status_and_moments_on_the_stand_in_clock(
    standin: StandIn, http: httpx.Client, clock: ManualClock
) -> None:
    task = submit(http, {"prompt": "a lighthouse", "num_images": 2}, webhook="http://127.0.0.1:9/hook")
    seen = standin.task(task["id"])
    assert (seen.status, seen.submitted_at, seen.started_at, seen.ends_at) == ("created", 500.0, None, None)
    clock.now = 501.0
    seen = standin.task(task["id"])
    assert (seen.status, seen.started_at, seen.ends_at, seen.webhook) == (
        "processing",
        500.5,
        504.5,
        "http://127.0.0.1:9/hook",
    )
    assert standin.tasks() == [seen]
    with pytest.raises(KeyError):
        standin.task("0" * 32)


def test_fault_result_5xx_counts_down(standin: StandIn, http: httpx.Client) -> None:
    task = submit(http, {"prompt": "x"})
    standin.faults.result_5xx = 2
    standin.faults.result_5xx_status = 502
    codes = [http.get(f"/api/v3/predictions/{task['id']}/result", headers=AUTH).status_code for _ in range(3)]
    assert codes == [502, 502, 200]


def test_fault_slow_result_makes_clients_time_out(standin: StandIn, http: httpx.Client) -> None:
    task = submit(http, {"prompt": "x"})
    standin.faults.result_delay = 2.0
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"/api/v3/predictions/{task['id']}/result", headers=AUTH, timeout=0.2)


def test_the_nsfw_marker_flags_every_output(http: httpx.Client, clock: ManualClock) -> None:
    flagged = submit(http, {"prompt": "a beach [nsfw]", "num_images": 2})
    clean = submit(http, {"prompt": "a beach"})
    clock.now += 3600
    assert result(http, flagged["id"])["has_nsfw_contents"] == [True, True]
    assert result(http, clean["id"])["has_nsfw_contents"] == [False]


def test_fault_failing_and_never_finishing_tasks(
    standin: StandIn, http: httpx.Client, clock: ManualClock
) -> None:
    standin.faults.fail_next = 1
    standin.faults.fail_error = "CUDA out of memory"
    failing = submit(http, {"prompt": "x"})
    standin.faults.never_finish_next = 1
    stuck = submit(http, {"prompt": "x"})
    by_marker = submit(http, {"prompt": "please [fail] now"})
    bad_lora = submit(http, {"prompt": "x", "loras": [{"path": "not a repo", "scale": 1.0}]})
    normal = submit(http, {"prompt": "x"})
    clock.now += 3600
    failed = result(http, failing["id"])
    assert (failed["status"], failed["error"], failed["outputs"]) == ("failed", "CUDA out of memory", [])
    assert result(http, stuck["id"])["status"] == "processing"
    assert result(http, by_marker["id"])["status"] == "failed"
    assert "LoRA" in result(http, bad_lora["id"])["error"]
    assert result(http, normal["id"])["status"] == "completed"


def test_fault_expired_outputs_and_tasks_are_404(
    standin: StandIn, http: httpx.Client, clock: ManualClock
) -> None:
    task = submit(http, {"prompt": "x"})
    clock.now += 100
    url = result(http, task["id"])["outputs"][0]
    assert httpx.get(url).status_code == 200
    standin.faults.outputs_expired = True
    assert httpx.get(url).status_code == 404
    standin.faults.tasks_expired = True
    assert http.get(f"/api/v3/predictions/{task['id']}/result", headers=AUTH).status_code == 404


def test_fault_concurrency_limit_keeps_tasks_queued(
    standin: StandIn, http: httpx.Client, clock: ManualClock
) -> None:
    # Given one slot and two 2-second tasks submitted together
    standin.faults.max_concurrent = 1
    first = submit(http, {"prompt": "x"})
    second = submit(http, {"prompt": "x"})
    # Then the second waits in `created` until the first ends (t=2.5), then runs 2 s
    states = {}
    for offset in (1.0, 2.6, 4.4, 4.6):
        clock.now = 500.0 + offset
        states[offset] = (result(http, first["id"])["status"], result(http, second["id"])["status"])
    assert states == {
        1.0: ("processing", "created"),
        2.6: ("completed", "processing"),
        4.4: ("completed", "processing"),
        4.6: ("completed", "completed"),
    }


def test_faults_and_reset_over_http(standin: StandIn, http: httpx.Client) -> None:
    response = http.post("/_standin/faults", json={"submit_429": 1, "submit_429_retry_after": 2})
    assert response.json()["data"]["submit_429"] == 1
    assert http.post(SUBMIT, json={"prompt": "x"}, headers=AUTH).headers["Retry-After"] == "2"
    unknown = http.post("/_standin/faults", json={"no_such_fault": 1})
    assert unknown.status_code == 400
    assert "no_such_fault" in unknown.json()["message"]
    http.post("/_standin/faults", json={"outputs_expired": True})
    assert standin.faults.outputs_expired is True
    assert http.post("/_standin/reset").status_code == 200
    assert standin.faults.outputs_expired is False
    assert standin.received == []


def test_introspection_in_python_and_over_http(standin: StandIn, http: httpx.Client) -> None:
    http.post(SUBMIT, json={"prompt": ""}, headers=AUTH)  # rejected: received, not submitted
    task = submit(http, {"prompt": "kept", "extra": 1}, webhook="https://example.com/hook")
    requests = http.get("/_standin/requests").json()["data"]
    submissions = http.get("/_standin/submissions").json()["data"]
    assert [r["json"]["prompt"] for r in requests] == ["", "kept"]
    assert requests[1]["query"] == {"webhook": "https://example.com/hook"}
    assert all("Authorization" not in r["headers"] and r["auth"] == "valid" for r in requests)
    assert [s["id"] for s in submissions] == [task["id"]]
    assert submissions[0]["webhook"] == "https://example.com/hook"
    assert standin.received == requests
    assert standin.submissions == submissions
    assert not any(r["path"].startswith("/_standin") for r in standin.received)


# --- state across a restart ---------------------------------------------------------------------
def test_a_new_stand_in_takes_over_the_tasks_and_secret_as_time_went_on(clock: ManualClock) -> None:
    # Given: a task one second into its two seconds of processing when its stand-in stops
    wall = ManualClock()
    wall.now = 1_000_000.0
    options: dict[str, Any] = {"api_key": API_KEY, "seconds_per_image": 2.0, "queue_seconds": 0.5}
    with StandIn(clock=clock, wall_clock=wall, **options) as first, httpx.Client(base_url=first.url) as http:
        task = submit(http, {"prompt": "carried over", "size": "256*256"})
        clock.now = 501.5
        state = json.loads(json.dumps(first.export_state()))  # as saved to disk
        secret = first.webhook_secret

    # When: a new stand-in (another process: its own clock) restores it half a again later
    later = ManualClock()
    later.now = 20.0
    wall.now += 0.5
    with StandIn(clock=later, wall_clock=wall, **options) as again, httpx.Client(base_url=again.url) as http:
        again.restore_state(state)

        # Then: same secret, the task half a again from its end, its links on the new server
        assert again.webhook_secret == secret
        seen = again.task(task["id"])
        assert (seen.status, seen.ends_at) == ("processing", pytest.approx(20.5))
        later.now = 20.5
        done = result(http, task["id"])
        assert done["status"] == "completed"
        assert done["outputs"][0].startswith(f"{again.url}/output/")
        assert httpx.get(done["outputs"][0]).status_code == 200
        with pytest.raises(ValueError, match="version"):
            again.restore_state({**state, "version": 0})


def test_finish_ends_a_task_now_even_one_that_never_finishes(standin: StandIn, http: httpx.Client) -> None:
    task = submit(http, {"prompt": "forever [hang]"})
    standin.finish(task["id"])
    assert standin.task_status(task["id"]) == "completed"
    assert len(result(http, task["id"])["outputs"]) == 1


# --- webhooks ----------------------------------------------------------------------------------
class Receiver:
    """A tiny webhook receiver: answers with the queued statuses (then 200) and records calls."""

    def __init__(self, statuses: list[int], want_calls: int | None = None) -> None:
        self.statuses = list(statuses)
        self.want_calls = want_calls
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.done = threading.Event()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/wavespeed"

    def _app(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append((dict(request.headers), request.get_data()))
        status = self.statuses.pop(0) if self.statuses else 200
        if (status == 200 and self.want_calls is None) or len(self.calls) == self.want_calls:
            self.done.set()
        return Response("ok", status=status)(environ, start_response)


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    receivers: list[Receiver] = []

    def make(statuses: list[int] | None = None, want_calls: int | None = None) -> Receiver:
        receiver = Receiver(statuses or [], want_calls)
        receiver.thread.start()
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def live_standin() -> Iterator[StandIn]:
    # Real clock, tiny latency: webhooks are driven by the dispatcher thread.
    with StandIn(
        api_key=API_KEY, seconds_per_image=0.05, queue_seconds=0.0, webhook_backoff_seconds=0.05
    ) as server:
        yield server


def test_webhook_is_delivered_and_verifies_with_the_account_secret(
    live_standin: StandIn, receiver_factory: Any
) -> None:
    receiver = receiver_factory()
    with httpx.Client(base_url=live_standin.url, timeout=5.0) as http:
        secret = http.get("/api/v3/webhook/secret", headers=AUTH).json()["data"]["secret"]
        task = submit(http, {"prompt": "x"}, webhook=receiver.url)

    assert receiver.done.wait(timeout=5), "webhook never arrived"
    headers, body = receiver.calls[0]
    assert secret.startswith("whsec_")
    payload = verify_wavespeed_webhook(secret, headers, body)
    assert payload["id"] == task["id"]
    assert payload["status"] == "completed"
    assert "code" not in payload  # the bare prediction, no envelope
    assert headers["Webhook-Signature"].startswith("v3,")


def test_webhook_is_retried_after_a_500(live_standin: StandIn, receiver_factory: Any) -> None:
    receiver = receiver_factory([500])
    with httpx.Client(base_url=live_standin.url, timeout=5.0) as http:
        submit(http, {"prompt": "[fail] x"}, webhook=receiver.url)

    assert receiver.done.wait(timeout=5), "webhook was not retried"
    assert len(receiver.calls) == 2
    (first_headers, _first_body), (second_headers, second_body) = receiver.calls
    assert first_headers["Webhook-Id"] == second_headers["Webhook-Id"]  # same message, redelivered
    assert json.loads(second_body)["status"] == "failed"
    live_standin.stop()  # joins the delivery thread, so its log is complete
    deliveries = [(d["attempt"], d["status"]) for d in live_standin.webhook_deliveries]
    assert deliveries == [(0, 500), (1, 200)]


def test_webhook_gives_up_after_three_retries(live_standin: StandIn, receiver_factory: Any) -> None:
    receiver = receiver_factory([500] * 10, want_calls=4)
    with httpx.Client(base_url=live_standin.url, timeout=5.0) as http:
        task = submit(http, {"prompt": "x"}, webhook=receiver.url)

    assert receiver.done.wait(timeout=5), "webhook was not retried three times"
    live_standin.stop()  # joins the delivery thread: no fifth attempt can still be pending
    assert len(receiver.calls) == 4
    assert [d["attempt"] for d in live_standin.webhook_deliveries] == [0, 1, 2, 3]
    assert all(d["task_id"] == task["id"] for d in live_standin.webhook_deliveries)


# --- uploads -----------------------------------------------------------------------------------
def test_binary_upload_is_served_back(http: httpx.Client) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, format="PNG")
    response = http.post(
        "/api/v3/media/upload/binary", headers=AUTH, files={"file": ("cat.png", png.getvalue(), "image/png")}
    )
    data = response.json()["data"]
    assert (data["type"], data["filename"], data["size"]) == ("image", "cat.png", len(png.getvalue()))
    download = httpx.get(data["download_url"])
    assert download.content == png.getvalue()
    assert download.headers["content-type"] == "image/png"
    missing = http.post("/api/v3/media/upload/binary", headers=AUTH, files={"other": ("a", b"x")})
    assert missing.status_code == 400
    assert http.post("/api/v3/media/upload/binary", files={"file": ("a", b"x")}).status_code == 401


def test_upload_ticket_then_put_like_a_presigned_url(http: httpx.Client) -> None:
    ticket = http.post(
        "/api/v3/media/uploads",
        headers=AUTH,
        json={"filename": "mask.png", "size": 4, "content_type": "image/png"},
    ).json()["data"]
    upload = ticket["upload"]
    assert upload["method"] == "PUT"
    assert httpx.get(ticket["download_url"]).status_code == 404  # nothing uploaded yet
    # An Authorization header or another Content-Type is refused, as S3 would
    assert httpx.put(upload["url"], content=b"data", headers={**upload["headers"], **AUTH}).status_code == 400
    assert (
        httpx.put(upload["url"], content=b"data", headers={"Content-Type": "image/jpeg"}).status_code == 403
    )
    assert httpx.put(upload["url"], content=b"data", headers=upload["headers"]).status_code == 200
    download = httpx.get(ticket["download_url"])
    assert (download.content, download.headers["content-type"]) == (b"data", "image/png")


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_prints_a_ready_line_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "fluxrelay_local.standin", "--port", "0", "--quiet", "--api-key", "cli-key"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"ready at (http://\S+) \(api key: cli-key", line)
        assert match, line
        assert httpx.get(f"{match.group(1)}/_standin/health").json()["data"] == {"ok": True}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
