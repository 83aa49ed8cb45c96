"""WaveSpeedClient against the local stand-in over real HTTP (plus httpx.MockTransport for the
transport failures a real server cannot produce on demand), and the v3 webhook verifier.

No test sleeps: the client gets a fake `sleep`/`clock`, the stand-in a manual clock.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image

from fluxrelay.adapters.wavespeed import (
    WaveSpeedClient,
    sign_wavespeed_webhook,
    verify_wavespeed_webhook,
)
from fluxrelay.domain.errors import (
    AmbiguousSubmitError,
    InvalidRequestError,
    UnauthorizedError,
    UnknownTaskError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay_local.standin import StandIn

API_KEY = "sk-live-TOPSECRET-0123456789abcdef"
TASK_ID = "e6832d4abffb4d79bfbca19783fca133"


class FakeTime:
    """An injectable clock whose sleep only records and advances time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def upstream_clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def standin(upstream_clock: FakeTime) -> Iterator[StandIn]:
    with StandIn(
        api_key=API_KEY,
        seconds_per_image=1.0,
        queue_seconds=0.5,
        clock=upstream_clock.clock,
        sleep=upstream_clock.sleep,
    ) as server:
        yield server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[Callable[..., WaveSpeedClient]]:
    clients: list[WaveSpeedClient] = []

    def make(base_url: str, api_key: str = API_KEY, **kwargs: object) -> WaveSpeedClient:
        options: dict = {"sleep": fake_time.sleep, "clock": fake_time.clock, "read_timeout": 5.0}
        options.update(kwargs)
        client = WaveSpeedClient(base_url, api_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(standin: StandIn, make_client: Callable[..., WaveSpeedClient]) -> WaveSpeedClient:
    return make_client(standin.url)


def _posts(standin: StandIn) -> list[dict]:
    return [r for r in standin.received if r["method"] == "POST"]


def _envelope(data: object, code: int = 200, message: str = "success") -> dict:
    return {"code": code, "message": message, "data": data}


def _prediction(status: str = "created") -> dict:
    return {"id": TASK_ID, "model": "wavespeed-ai/flux-schnell-lora", "status": status, "outputs": []}


def _mock_client(
    make_client: Callable[..., WaveSpeedClient], handler: Callable[[httpx.Request], httpx.Response], **kw
) -> WaveSpeedClient:
    return make_client(
        "https://api.wavespeed.test", http=httpx.Client(transport=httpx.MockTransport(handler)), **kw
    )


# --- happy path and task outcomes --------------------------------------------------------------
def test_submit_poll_and_download_a_real_image(
    client: WaveSpeedClient, standin: StandIn, upstream_clock: FakeTime
) -> None:
    # Given a submitted two-image PNG task
    submitted = client.submit(
        {"prompt": "a red fox", "size": "512*768", "output_format": "png", "num_images": 2}
    )
    assert submitted.status == "created"
    assert len(submitted.id) == 32
    assert submitted.urls["get"].endswith(f"/api/v3/predictions/{submitted.id}/result")

    # When polled before and after its latency (0.5 s queue + 2 x 1 s)
    upstream_clock.now += 2.4
    running = client.get_result(submitted.id)
    upstream_clock.now += 0.1
    done = client.get_result(submitted.id)

    # Then it runs, completes, and its outputs are real PNGs of the requested size
    assert running.status == "processing"
    assert not running.is_terminal
    assert done.is_completed
    assert done.is_terminal
    assert not done.is_failed
    assert done.has_nsfw_contents == [False, False]
    assert done.execution_time == 2000
    assert done.timings is not None
    assert done.timings.inference == 2000
    assert len(done.outputs) == 2
    for url in done.outputs:
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert (image.format, image.size) == ("PNG", (512, 768))
    assert standin.submissions[0]["input"]["prompt"] == "a red fox"


def test_submit_passes_the_webhook_as_query_parameter(client: WaveSpeedClient, standin: StandIn) -> None:
    client.submit({"prompt": "x"}, webhook="https://hooks.example.com/ws?a=1&b=2")
    assert standin.submissions[0]["webhook"] == "https://hooks.example.com/ws?a=1&b=2"


def test_failed_task_is_a_terminal_failure_with_its_error(
    client: WaveSpeedClient, upstream_clock: FakeTime
) -> None:
    task = client.submit({"prompt": "[fail] a cat"})
    upstream_clock.now += 10
    result = client.get_result(task.id)
    assert result.status == "failed"
    assert result.is_failed
    assert result.is_terminal
    assert not result.is_completed
    assert result.error
    assert result.outputs == []


def test_unknown_upstream_status_keeps_the_task_running(
    client: WaveSpeedClient, standin: StandIn, upstream_clock: FakeTime
) -> None:
    task = client.submit({"prompt": "x"})
    upstream_clock.now += 10
    standin.faults.result_status = "warming_up"
    result = client.get_result(task.id)
    assert result.status == "warming_up"
    assert not result.is_terminal
    assert not result.is_failed
    assert not result.is_completed


@pytest.mark.parametrize(
    ("status", "terminal", "failed"),
    [
        ("created", False, False),
        ("processing", False, False),
        ("completed", True, False),
        ("failed", True, True),
        ("cancelled", True, True),
        ("timeout", True, True),
        ("deleted", True, True),
        ("queued-in-new-region", False, False),
        ("", False, False),
    ],
)
def test_prediction_status_rules(status: str, terminal: bool, failed: bool) -> None:
    prediction = UpstreamPrediction.model_validate({"id": TASK_ID, "status": status})
    assert prediction.is_terminal is terminal
    assert prediction.is_failed is failed
    assert prediction.is_completed is (status == "completed")


def test_prediction_tolerates_nulls_and_keeps_unknown_fields() -> None:
    prediction = UpstreamPrediction.model_validate(
        {"id": TASK_ID, "status": "processing", "outputs": None, "error": None, "urls": None, "code": 5004}
    )
    assert prediction.outputs == []
    assert prediction.error == ""
    assert prediction.urls == {}
    assert prediction.model_extra == {"code": 5004}


# --- submit: retries only when nothing can have arrived ------------------------------------------
def test_submit_429_honours_retry_after(
    client: WaveSpeedClient, standin: StandIn, fake_time: FakeTime
) -> None:
    standin.faults.submit_429 = 2
    standin.faults.submit_429_retry_after = 3
    task = client.submit({"prompt": "x"})
    assert task.status == "created"
    assert fake_time.sleeps == [3.0, 3.0]
    assert len(_posts(standin)) == 3
    assert len(standin.submissions) == 1


def test_submit_429_without_retry_after_backs_off_exponentially(
    client: WaveSpeedClient, standin: StandIn, fake_time: FakeTime
) -> None:
    standin.faults.submit_429 = 3
    client.submit({"prompt": "x"})
    assert fake_time.sleeps == [0.5, 1.0, 2.0]
    assert len(standin.submissions) == 1


def test_submit_429_past_the_budget_raises_rate_limited(
    client: WaveSpeedClient, standin: StandIn, fake_time: FakeTime
) -> None:
    standin.faults.submit_429 = 100
    standin.faults.submit_429_retry_after = 4
    with pytest.raises(UpstreamRateLimitedError) as info:
        client.submit({"prompt": "x"})
    assert info.value.retry_after == 4.0
    assert fake_time.sleeps == [4.0, 4.0]  # a third wait would pass the 10 s budget
    assert standin.submissions == []


def test_timeout_after_send_is_ambiguous_and_never_resent(
    standin: StandIn, make_client: Callable[..., WaveSpeedClient]
) -> None:
    # Given a stand-in that accepts the task but answers after the client's read timeout
    standin.faults.submit_hang = 1
    standin.faults.submit_hang_seconds = 5.0
    client = make_client(standin.url, read_timeout=0.3)

    with pytest.raises(AmbiguousSubmitError) as info:
        client.submit({"prompt": "x"})

    assert "may exist upstream" in str(info.value)
    assert "not resent" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert len(_posts(standin)) == 1
    assert len(standin.submissions) == 1


def test_submit_5xx_is_ambiguous_and_never_resent(client: WaveSpeedClient, standin: StandIn) -> None:
    standin.faults.submit_5xx = 1
    with pytest.raises(AmbiguousSubmitError, match="may exist upstream"):
        client.submit({"prompt": "x"})
    assert len(_posts(standin)) == 1


def test_connection_refused_is_retried_within_budget_then_fails_fast(
    make_client: Callable[..., WaveSpeedClient], fake_time: FakeTime
) -> None:
    # Given a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", connect_timeout=0.5)

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailableError, match="nothing was sent") as info:
        client.submit({"prompt": "x"})

    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]  # 7.5 s; the next 8 s wait would pass 10 s
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_after_send_are_ambiguous(
    make_client: Callable[..., WaveSpeedClient], error: Exception
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise error

    client = _mock_client(make_client, handler)
    with pytest.raises(AmbiguousSubmitError, match="not resent"):
        client.submit({"prompt": "x"})
    assert len(calls) == 1


def test_connect_timeout_on_submit_is_retried(
    make_client: Callable[..., WaveSpeedClient], fake_time: FakeTime
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectTimeout("connect timed out")
        return httpx.Response(200, json=_envelope(_prediction()))

    client = _mock_client(make_client, handler)
    assert client.submit({"prompt": "x"}).id == TASK_ID
    assert len(calls) == 2
    assert fake_time.sleeps == [0.5]
    assert calls[1].url.path == "/api/v3/wavespeed-ai/flux-schnell-lora"


def test_submit_sends_explicit_timeouts_and_bearer_key(make_client: Callable[..., WaveSpeedClient]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_envelope(_prediction()))

    client = _mock_client(make_client, handler, connect_timeout=2.0, read_timeout=7.0)
    client.submit({"prompt": "x"})
    assert seen[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert seen[0].extensions["timeout"] == {"connect": 2.0, "read": 7.0, "write": 7.0, "pool": 7.0}


def test_submit_400_is_rejected_with_the_upstream_message(client: WaveSpeedClient) -> None:
    with pytest.raises(UpstreamRejectedError, match="num_images") as info:
        client.submit({"prompt": "x", "num_images": 9})
    assert info.value.http_status == 400


@pytest.mark.parametrize("call", ["submit", "get_result"])
def test_wrong_key_is_upstream_unauthorized(
    standin: StandIn, make_client: Callable[..., WaveSpeedClient], call: str
) -> None:
    client = make_client(standin.url, api_key="sk-wrong-OTHERSECRET")
    with pytest.raises(UpstreamUnauthorizedError) as info:
        client.submit({"prompt": "x"}) if call == "submit" else client.get_result(TASK_ID)
    assert "OTHERSECRET" not in str(info.value)


# --- envelope and body edge cases ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("envelope_code", "expected"),
    [(400, UpstreamRejectedError), (401, UpstreamUnauthorizedError), (500, AmbiguousSubmitError)],
)
def test_submit_envelope_code_on_http_200_is_an_error(
    make_client: Callable[..., WaveSpeedClient], envelope_code: int, expected: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_envelope(None, envelope_code, "size is invalid"))

    with pytest.raises(expected):
        _mock_client(make_client, handler).submit({"prompt": "x"})


def test_get_envelope_404_on_http_200_is_unknown_task(make_client: Callable[..., WaveSpeedClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_envelope(None, 404, "not found"))

    with pytest.raises(UnknownTaskError):
        _mock_client(make_client, handler).get_result(TASK_ID)


def test_get_envelope_500_on_http_200_is_retried_then_unavailable(
    make_client: Callable[..., WaveSpeedClient], fake_time: FakeTime
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=_envelope(None, 500, "boom"))

    with pytest.raises(UpstreamUnavailableError):
        _mock_client(make_client, handler, get_retries=2).get_result(TASK_ID)
    assert len(calls) == 3
    assert fake_time.sleeps == [0.5, 1.0]


def test_non_json_body_after_submit_is_ambiguous(make_client: Callable[..., WaveSpeedClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>gateway</html>")

    with pytest.raises(AmbiguousSubmitError):
        _mock_client(make_client, handler).submit({"prompt": "x"})


def test_non_json_body_on_get_is_unavailable(make_client: Callable[..., WaveSpeedClient]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>gateway</html>")

    with pytest.raises(UpstreamUnavailableError, match="non-JSON"):
        _mock_client(make_client, handler, get_retries=0).get_result(TASK_ID)


# --- get_result ---------------------------------------------------------------------------------
def test_get_5xx_then_success(client: WaveSpeedClient, standin: StandIn, fake_time: FakeTime) -> None:
    task = client.submit({"prompt": "x"})
    standin.faults.result_5xx = 2
    assert client.get_result(task.id).id == task.id
    assert fake_time.sleeps == [0.5, 1.0]


def test_get_5xx_past_retries_is_unavailable(
    standin: StandIn, make_client: Callable[..., WaveSpeedClient]
) -> None:
    client = make_client(standin.url, get_retries=2)
    task = client.submit({"prompt": "x"})
    standin.faults.result_5xx = 10
    standin.faults.result_5xx_status = 503
    with pytest.raises(UpstreamUnavailableError) as info:
        client.get_result(task.id)
    assert info.value.retryable
    assert len([r for r in standin.received if r["method"] == "GET"]) == 3


def test_get_slow_response_times_out_as_unavailable(
    standin: StandIn, make_client: Callable[..., WaveSpeedClient]
) -> None:
    client = make_client(standin.url, get_retries=0, read_timeout=0.2)
    task = client.submit({"prompt": "x"})
    standin.faults.result_delay = 2.0
    with pytest.raises(UpstreamUnavailableError) as info:
        client.get_result(task.id)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_get_429_honours_retry_after_then_gives_up(
    make_client: Callable[..., WaveSpeedClient], fake_time: FakeTime
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "2"}, json=_envelope(None, 429, "slow down"))

    with pytest.raises(UpstreamRateLimitedError) as info:
        _mock_client(make_client, handler, get_retries=3).get_result(TASK_ID)
    assert fake_time.sleeps == [2.0, 2.0, 2.0]
    assert info.value.retry_after == 2.0


def test_unknown_task_is_unknown_task_error(client: WaveSpeedClient) -> None:
    with pytest.raises(UnknownTaskError):
        client.get_result("0" * 32)


def test_malformed_task_id_never_reaches_upstream(client: WaveSpeedClient, standin: StandIn) -> None:
    with pytest.raises(UnknownTaskError):
        client.get_result("../../wavespeed-ai/flux-schnell-lora")
    assert standin.received == []


# --- the key never leaks ------------------------------------------------------------------------
def test_api_key_never_appears_in_logs_exceptions_or_repr(
    standin: StandIn,
    make_client: Callable[..., WaveSpeedClient],
    upstream_clock: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("", "httpx", "httpcore", "fluxrelay"):
        caplog.set_level(logging.DEBUG, logger=name)
    client = make_client(standin.url, get_retries=1)
    errors: list[BaseException] = []

    def attempt(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)
            if exc.__cause__ is not None:
                errors.append(exc.__cause__)

    # Success, retries (429, 5xx), ambiguous submit, rejection, unknown task
    task = client.submit({"prompt": "x"}, webhook="https://hooks.example.com/x")
    upstream_clock.now += 5
    client.get_result(task.id)
    standin.faults.submit_429 = 1
    client.submit({"prompt": "x"})
    standin.faults.result_5xx = 5
    attempt(lambda: client.get_result(task.id))
    standin.faults.submit_5xx = 1
    attempt(lambda: client.submit({"prompt": "x"}))
    attempt(lambda: client.submit({"prompt": ""}))
    attempt(lambda: client.get_result("f" * 32))
    # An upstream that echoes the key back in its error text
    echo = _mock_client(
        make_client, lambda request: httpx.Response(400, json=_envelope(None, 400, f"bad key {API_KEY}"))
    )
    attempt(lambda: echo.submit({"prompt": "x"}))

    assert len(errors) >= 5
    assert any(record.name.startswith("httpcore") for record in caplog.records)  # DEBUG was on
    assert any(record.name == "httpx" for record in caplog.records)
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in json.dumps(record.__dict__, default=str)
    for exc in errors:
        assert API_KEY not in str(exc)
        assert API_KEY not in repr(exc)
    assert API_KEY not in repr(client)
    assert all(r["auth"] == "valid" and "Authorization" not in r["headers"] for r in standin.received)


# --- webhooks (WaveSpeed -> us) -----------------------------------------------------------------
SECRET = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
BODY = json.dumps({"id": TASK_ID, "status": "completed", "outputs": ["https://cdn/x.jpeg"]}).encode()
NOW = 1_750_000_000


def _headers(signature: str | None = None, timestamp: int = NOW, webhook_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or sign_wavespeed_webhook(SECRET, webhook_id, timestamp, BODY),
    }


def test_signature_uses_the_raw_secret_minus_prefix_and_hex() -> None:
    # Independent computation of WaveSpeed's webhook signature: key NOT base64-decoded, hex, v3 prefix.
    key = b"c2VjcmV0LWtleS1mb3ItdGVzdHM="
    expected = hmac.new(key, f"msg_1.{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_wavespeed_webhook(SECRET, "msg_1", NOW, BODY) == f"v3,{expected}"


def test_valid_webhook_returns_the_parsed_body() -> None:
    headers = {k.title(): v for k, v in _headers().items()}  # header names are case-insensitive
    payload = verify_wavespeed_webhook(SECRET, headers, BODY, now=NOW + 299)
    assert payload["id"] == TASK_ID


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        (_headers(), BODY + b" ", NOW, "does not match"),
        (_headers(), BODY, NOW + 301, "away from now"),
        (_headers(), BODY, NOW - 301, "away from now"),
        ({**_headers(), "webhook-id": "msg_2"}, BODY, NOW, "does not match"),
        ({k: v for k, v in _headers().items() if k != "webhook-signature"}, BODY, NOW, "missing"),
        (_headers(signature="v1,abcdef"), BODY, NOW, "no v3 signature"),
        ({**_headers(), "webhook-timestamp": "yesterday"}, BODY, NOW, "unix time"),
    ],
    ids=["tampered-body", "too-new", "too-old", "other-id", "no-signature", "v1-scheme", "bad-timestamp"],
)
def test_invalid_webhooks_are_unauthorized(headers: dict, body: bytes, now: int, reason: str) -> None:
    with pytest.raises(UnauthorizedError, match=reason):
        verify_wavespeed_webhook(SECRET, headers, body, now=now)


def test_webhook_signed_with_a_base64_decoded_key_is_rejected() -> None:
    # What a Standard Webhooks signer would do with the same secret: must not verify.
    import base64

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"msg_1.{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(UnauthorizedError):
        verify_wavespeed_webhook(SECRET, _headers(signature=f"v3,{digest}"), BODY, now=NOW)


def test_one_matching_signature_among_several_is_enough() -> None:
    good = sign_wavespeed_webhook(SECRET, "msg_1", NOW, BODY)
    payload = verify_wavespeed_webhook(SECRET, _headers(signature=f"v3,deadbeef {good}"), BODY, now=NOW)
    assert payload["status"] == "completed"


def test_signed_non_object_body_is_invalid_request() -> None:
    body = b"[1, 2]"
    headers = _headers(signature=sign_wavespeed_webhook(SECRET, "msg_1", NOW, body))
    with pytest.raises(InvalidRequestError):
        verify_wavespeed_webhook(SECRET, headers, body, now=NOW)
