"""Uploads and img2img from S3: the domain with in-memory fakes, the routes, the trigger handler,
and (against moto) the presigned PUT's signature."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
import requests
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from moto import mock_aws
from PIL import Image

from fluxrelay import composition
from fluxrelay.adapters.s3 import S3OutputStore, S3UploadStore
from fluxrelay.api.app import create_app
from fluxrelay.api.idempotency import Idempotency
from fluxrelay.domain.dispatch import Dispatcher
from fluxrelay.domain.errors import InvalidRequestError, UpstreamRejectedError
from fluxrelay.domain.expiry import UploadExpiryService
from fluxrelay.domain.jobs import JobStatus
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.submit import SubmitService
from fluxrelay.domain.uploads import EXPIRY_GRACE_SECONDS, UploadService, drop_job_id
from fluxrelay.models.s3events import S3Object, s3_objects
from fluxrelay.models.uploads import Img2ImgUploadRequest, UploadTicketRequest
from fluxrelay.settings import Settings
from tests.fakes.memory import FixedSecrets, MemoryJobStore, MemorySlots, RecordingWorkflow
from tests.fakes.uploads import CountingUpstream, FailingWorkflow, MemoryUploadStore
from tests.support.functions import Ctx, load_handler

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
BUCKET = "fluxrelay-media-example"
SAMPLE_JOB_ID = "0123456789abcdef0123456789abcdef"


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, format=fmt)
    return buf.getvalue()


@dataclass
class World:
    service: UploadService
    jobs: MemoryJobStore
    bucket: MemoryUploadStore
    upstream: CountingUpstream
    generation: RecordingWorkflow
    expiry: RecordingWorkflow
    settings: Settings
    expiring: UploadExpiryService

    def executions(self, job_id: str) -> list[dict[str, Any]]:
        return [payload for jid, payload in self.generation.started if jid == job_id]


def world(upstream: CountingUpstream | None = None, **overrides: Any) -> World:
    settings = Settings(**{"UPLOAD_WINDOW_SECONDS": 3600, "JOB_DEADLINE_SECONDS": 900, **overrides})
    jobs, bucket = MemoryJobStore(), MemoryUploadStore()
    upstream = upstream or CountingUpstream()
    generation, expiry = RecordingWorkflow(), RecordingWorkflow()
    lifecycle = JobLifecycle(
        store=jobs, generation=generation, settings=settings, expiry=expiry, clock=lambda: T0
    )
    dispatcher = Dispatcher(
        lifecycle=lifecycle,
        store=jobs,
        upstream=upstream,
        slots=MemorySlots(),
        settings=settings,
        clock=lambda: T0,
    )
    submit = SubmitService(
        lifecycle=lifecycle,
        dispatcher=dispatcher,
        webhook_secrets=FixedSecrets(),
        settings=settings,
        check_url=lambda url: None,
    )
    service = UploadService(
        lifecycle=lifecycle,
        jobs=jobs,
        submitter=submit,
        uploads=bucket,
        settings=settings,
        token=lambda: "tok",
    )
    expiring = UploadExpiryService(lifecycle=lifecycle, jobs=jobs, uploads=bucket, settings=settings)
    return World(service, jobs, bucket, upstream, generation, expiry, settings, expiring)


def img2img_ticket(w: World, **body: Any) -> Any:
    request = Img2ImgUploadRequest.model_validate({"prompt": "a watercolour", "strength": 0.6, **body})
    return w.service.img2img_ticket("owner-1", request, result_base_url="https://api.example")


def uploaded(w: World, key: str, data: bytes, content_type: str = "image/jpeg") -> S3Object:
    w.bucket.add(key, data, content_type)
    return S3Object(bucket=BUCKET, key=key, size=len(data), etag=hashlib.md5(data).hexdigest())  # noqa: S324


# --------------------------------------------------------------------------- upload tickets
def test_upload_ticket_has_the_wavespeed_shape_and_signs_type_and_length() -> None:
    w = world()

    ticket = w.service.ticket(
        "owner-1", UploadTicketRequest(filename="photo 1.jpg", size=48213, content_type="image/jpeg")
    )

    data = ticket.model_dump(mode="json")
    assert set(data) == {"download_url", "filename", "size", "upload"}
    assert data["upload"]["method"] == "PUT"
    assert data["upload"]["headers"] == {"Content-Type": "image/jpeg", "Content-Length": "48213"}
    assert w.bucket.puts[0]["key"] == "uploads/owner-1/tok/photo 1.jpg"
    assert w.bucket.puts[0]["expires_in"] == w.settings.upload_url_ttl_seconds
    # The download URL must outlive a job that uses it as `image`.
    assert f"X-Amz-Expires={w.settings.upload_download_ttl_seconds}" in ticket.download_url
    assert w.settings.upload_download_ttl_seconds >= w.settings.job_deadline_seconds


def test_upload_ticket_refuses_a_size_above_the_configured_limit() -> None:
    w = world(MAX_UPLOAD_BYTES=1000)
    with pytest.raises(InvalidRequestError, match="size must be a whole number of bytes from 1 to 1000"):
        w.service.ticket(
            "owner-1", UploadTicketRequest(filename="a.jpg", size=1001, content_type="image/jpeg")
        )
    assert w.bucket.puts == []


def test_binary_upload_stores_a_real_image_under_the_owners_prefix() -> None:
    w = world()
    data = image_bytes("PNG")

    result = w.service.binary("owner-1", "C:\\phone\\IMG_1.png", data)

    assert result.filename == "IMG_1.png"
    assert result.size == len(data)
    assert w.bucket.objects["uploads/owner-1/tok/IMG_1.png"] == (data, "image/png")


@pytest.mark.parametrize(
    ("data", "limit", "message"),
    [
        (b"GIF89a not what we take", 4096, "not a decodable JPEG, PNG or WebP"),
        (image_bytes("JPEG")[:200], 4096, "not a decodable JPEG, PNG or WebP"),
        (image_bytes("PNG", (400, 400)), 100, "file must be a whole number of bytes from 1 to 100"),
    ],
)
def test_binary_upload_refuses_non_images_and_oversized_files(data: bytes, limit: int, message: str) -> None:
    w = world(MAX_BINARY_UPLOAD_BYTES=limit)
    with pytest.raises(InvalidRequestError, match=message):
        w.service.binary("owner-1", "x.jpg", data)
    assert w.bucket.objects == {}


# --------------------------------------------------------------------------- img2img by upload
def test_img2img_ticket_records_a_waiting_job_starts_its_expiry_timer_and_returns_the_put() -> None:
    w = world()

    ticket = img2img_ticket(w, content_type="image/png", content_length=5000)

    job = w.jobs.get(ticket.id)
    assert job is not None
    assert job.status is JobStatus.WAITING_UPLOAD
    assert job.input_key == f"img2img/owner-1/{ticket.id}.png"
    assert job.request["image"] is None
    assert job.deadline_at is not None
    assert (job.deadline_at - T0).total_seconds() == 3600
    assert w.expiry.started == [
        (ticket.id, {"job_id": ticket.id, "wait_seconds": 3600 + EXPIRY_GRACE_SECONDS})
    ]
    assert w.bucket.puts == [
        {
            "key": job.input_key,
            "headers": {"Content-Type": "image/png", "Content-Length": "5000"},
            "expires_in": 3600,
        }
    ]
    data = ticket.model_dump(mode="json")
    assert data["status"] == "created"
    assert data["urls"] == {"get": f"https://api.example/api/v3/predictions/{ticket.id}/result"}
    assert data["upload"]["method"] == "PUT"
    assert w.upstream.submitted == []
    assert w.generation.started == []


def test_img2img_ticket_keeps_a_mask_that_needs_the_uploaded_image() -> None:
    w = world()
    ticket = img2img_ticket(w, mask_image="https://cdn.example/mask.png")
    key = w.jobs.get(ticket.id).input_key  # type: ignore[union-attr]

    assert w.service.ingest(uploaded(w, key, image_bytes())) == "started"

    sent = w.upstream.submitted[0]
    assert sent["mask_image"] == "https://cdn.example/mask.png"
    assert sent["image"].startswith(f"https://bucket.example/{key}?")


def test_img2img_ticket_whose_timer_cannot_start_fails_the_job_instead_of_leaving_it_waiting() -> None:
    w = world()
    w.service.lifecycle.expiry = FailingWorkflow()

    with pytest.raises(RuntimeError):
        img2img_ticket(w)

    (job,) = w.jobs.items.values()
    assert job.status is JobStatus.FAILED
    assert w.bucket.puts == []


# --- the HTTP routes (a resolver with the API's validation and error mapping) -------------------
class UnlimitedLimiter:
    def __init__(self) -> None:
        self.taken: list[int] = []

    def take(self, key_id: str, *, images: int, requests_per_minute: int, images_per_day: int) -> None:
        self.taken.append(images)


class FakeContainer:
    def __init__(self, w: World) -> None:
        self.uploads = w.service
        self.upload_expiry = w.expiring
        self.settings = w.settings
        self.limiter = UnlimitedLimiter()
        # Never reached without an Idempotency-Key header, which these tests do not send.
        self.idempotency = Idempotency("unused", 60, client=boto3.client("dynamodb", region_name="us-east-1"))


def api(w: World, monkeypatch: pytest.MonkeyPatch) -> APIGatewayHttpResolver:
    """The real API app, on the in-memory services of `w`."""
    monkeypatch.setattr(composition, "container", lambda: FakeContainer(w))
    return create_app()


def http_event(
    path: str,
    body: bytes | str,
    *,
    content_type: str = "application/json",
    owner: str | None = "owner-1",
    query: str = "",
) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": query,
        "queryStringParameters": dict(parse_qsl(query)) or None,
        "headers": {"content-type": content_type, "host": "api.example"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "test",
            },
            "requestId": "req",
            "routeKey": f"POST {path}",
            "stage": "$default",
            "time": "01/Jan/2026:12:00:00 +0000",
            "timeEpoch": 1767268800000,
            "authorizer": {"lambda": {"owner": owner} if owner else {"auth_error": "missing"}},
        },
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


def call(app: APIGatewayHttpResolver, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    out = app.resolve(event, Ctx())
    return out["statusCode"], json.loads(out["body"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "x", "image": "https://cdn.example/a.jpg"}, "image must not be given"),
        ({"prompt": "x", "num_image": 2}, "unknown field 'num_image'"),
        ({"prompt": "x", "strength": 1.5}, "strength must be a number from 0.0 to 1.0"),
        ({"prompt": ""}, "prompt must be a non-empty string"),
        ({"prompt": "x", "content_type": "image/gif"}, "content_type must be one of image/jpeg"),
        (
            {"prompt": "x", "content_length": 30 * 1024 * 1024},
            "content_length must be a whole number of bytes",
        ),
        ("{not json", "the body is not valid JSON"),
    ],
)
def test_img2img_upload_with_bad_parameters_is_a_400_before_any_job_or_upload(
    body: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world()
    app = api(w, monkeypatch)
    raw = body if isinstance(body, str) else json.dumps(body)

    status, answer = call(app, http_event("/api/v3/img2img/uploads", raw))

    assert status == 400
    assert answer["code"] == 400
    assert answer["data"] is None
    assert message in answer["message"]
    assert w.jobs.items == {}
    assert w.bucket.puts == []
    assert w.upstream.submitted == []


def test_img2img_upload_route_answers_the_job_and_its_put(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world()
    app = api(w, monkeypatch)

    status, answer = call(
        app,
        http_event(
            "/api/v3/img2img/uploads",
            json.dumps({"prompt": "x"}),
            query="webhook=https%3A%2F%2Fhooks.example%2Fa",
        ),
    )

    assert status == 200
    data = answer["data"]
    assert set(data) == {"id", "urls", "status", "upload"}
    assert data["status"] == "created"
    assert data["upload"]["headers"] == {"Content-Type": "image/jpeg"}
    job = w.jobs.get(data["id"])
    assert job is not None
    assert job.webhook is not None
    assert job.webhook.url == "https://hooks.example/a"


def test_upload_routes_need_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world()
    app = api(w, monkeypatch)
    body = json.dumps({"filename": "a.jpg", "size": 10, "content_type": "image/jpeg"})

    status, answer = call(app, http_event("/api/v3/media/uploads", body, owner=None))

    assert (status, answer["code"]) == (401, 401)
    assert w.bucket.puts == []


def test_media_uploads_route_answers_the_ticket(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world()
    app = api(w, monkeypatch)
    body = json.dumps({"filename": "a.jpg", "size": 10, "content_type": "image/jpeg"})

    status, answer = call(app, http_event("/api/v3/media/uploads", body))

    assert status == 200
    assert answer["message"] == "success"
    assert answer["data"]["upload"]["headers"]["Content-Length"] == "10"


def multipart(name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----fluxrelayboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_binary_route_stores_the_multipart_file(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world()
    app = api(w, monkeypatch)
    data = image_bytes("JPEG")
    body, ctype = multipart("file", "cat.jpg", data)

    status, answer = call(app, http_event("/api/v3/media/upload/binary", body, content_type=ctype))

    assert status == 200
    assert answer["data"]["type"] == "image"
    assert answer["data"]["size"] == len(data)
    assert w.bucket.objects["uploads/owner-1/tok/cat.jpg"][0] == data


@pytest.mark.parametrize(
    ("field", "data", "message"),
    [
        ("other", image_bytes(), "multipart field 'file' is required"),
        ("file", b"%PDF-1.7", "not a decodable"),
    ],
)
def test_binary_route_refuses_a_missing_field_or_a_non_image(
    field: str, data: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world()
    app = api(w, monkeypatch)
    body, ctype = multipart(field, "x.jpg", data)

    status, answer = call(app, http_event("/api/v3/media/upload/binary", body, content_type=ctype))

    assert status == 400
    assert message in answer["message"]
    assert w.bucket.objects == {}


# --------------------------------------------------------------------------- the S3 trigger
def test_duplicate_s3_event_for_an_upload_gives_one_job_and_one_upstream_call() -> None:
    w = world()
    ticket = img2img_ticket(w)
    key = f"img2img/owner-1/{ticket.id}.jpeg"
    event = uploaded(w, key, image_bytes())

    outcomes = [w.service.ingest(event), w.service.ingest(event)]

    assert outcomes == ["started", "duplicate"]
    assert len(w.upstream.submitted) == 1
    assert w.upstream.submitted[0]["image"].startswith(f"https://bucket.example/{key}?")
    assert w.upstream.submitted[0]["strength"] == 0.6
    assert len(w.executions(ticket.id)) == 1
    job = w.jobs.get(ticket.id)
    assert job is not None
    assert job.status is JobStatus.CREATED
    assert job.request["image"] == w.upstream.submitted[0]["image"]
    assert len(w.jobs.items) == 1


@pytest.mark.parametrize(
    ("data", "content_type", "overrides", "message"),
    [
        (
            b"this is a text file, not a photo" * 10,
            "image/jpeg",
            {},
            "not a decodable JPEG, PNG or WebP image",
        ),
        (image_bytes("GIF"), "image/jpeg", {}, "unsupported image format GIF; use JPEG, PNG or WebP"),
        (image_bytes("JPEG", (300, 300))[:400], "image/jpeg", {}, "not a decodable JPEG, PNG or WebP image"),
        (image_bytes("JPEG", (300, 300)), "image/jpeg", {"MAX_UPLOAD_BYTES": 500}, "the limit is 500 bytes"),
        (b"", "image/jpeg", {}, "the uploaded file is empty"),
        (image_bytes("PNG"), "image/jpeg", {}, "is a PNG image but was sent as image/jpeg"),
    ],
    ids=["text", "gif", "truncated", "oversized", "empty", "type-mismatch"],
)
def test_bad_upload_fails_the_job_clearly_notifies_and_never_calls_upstream(
    data: bytes, content_type: str, overrides: dict[str, Any], message: str
) -> None:
    w = world(**overrides)
    ticket = img2img_ticket(w)
    event = uploaded(w, f"img2img/owner-1/{ticket.id}.jpeg", data, content_type)

    assert w.service.ingest(event) == "failed"
    assert w.service.ingest(event) == "duplicate"

    job = w.jobs.get(ticket.id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.type == "invalid_input"
    assert message in job.error.message
    assert w.upstream.submitted == []
    # Notified once, through the generation workflow's Notify path (after its shortest wait, 1 s).
    assert w.executions(ticket.id) == [{"job_id": ticket.id, "wait_seconds": 1}]


def test_large_upload_is_checked_by_its_header_without_reading_it_all() -> None:
    w = world(FULL_DECODE_MAX_BYTES=100)
    ticket = img2img_ticket(w)
    event = uploaded(w, f"img2img/owner-1/{ticket.id}.jpeg", image_bytes("JPEG", (300, 300)))

    assert w.service.ingest(event) == "started"
    assert len(w.upstream.submitted) == 1


def test_upstream_rejecting_the_submission_fails_and_notifies_the_job() -> None:
    w = world(upstream=CountingUpstream(error=UpstreamRejectedError("bad lora")))
    ticket = img2img_ticket(w)
    event = uploaded(w, f"img2img/owner-1/{ticket.id}.jpeg", image_bytes())

    assert w.service.ingest(event) == "failed"
    assert w.service.ingest(event) == "duplicate"

    assert len(w.upstream.submitted) == 1
    assert w.jobs.get(ticket.id).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert w.executions(ticket.id) == [{"job_id": ticket.id, "wait_seconds": 1}]


@pytest.mark.parametrize(
    "key",
    [
        "img2img/owner-2/{id}.jpeg",  # somebody else's prefix
        "img2img/owner-1/{id}.png",  # not the key the ticket was issued for
        "img2img/owner-1/ffffffffffffffffffffffffffffffff.jpeg",  # no such job
        "uploads/owner-1/tok/a.jpeg",  # not under the trigger prefix
    ],
)
def test_objects_that_belong_to_no_waiting_job_are_ignored(key: str) -> None:
    w = world()
    ticket = img2img_ticket(w)

    assert w.service.ingest(uploaded(w, key.format(id=ticket.id), image_bytes())) == "ignored"
    assert w.upstream.submitted == []
    assert w.jobs.get(ticket.id).status is JobStatus.WAITING_UPLOAD  # type: ignore[union-attr]


# --- operator drops ---------------------------------------------------------------------------
def sidecar(**overrides: Any) -> bytes:
    return json.dumps({**json.loads((EVENTS / "img2img_sidecar.json").read_text()), **overrides}).encode()


def test_operator_drop_with_sidecar_starts_one_system_job_even_when_delivered_twice() -> None:
    w = world(SYSTEM_OWNER="operators")
    w.bucket.add("img2img/drops/batch-7/portrait 01.json", sidecar(), "application/json")
    event = uploaded(w, "img2img/drops/batch-7/portrait 01.jpeg", image_bytes())

    outcomes = [w.service.ingest(event), w.service.ingest(event)]

    assert outcomes == ["started", "duplicate"]
    job_id = drop_job_id(BUCKET, event.key, event.etag)
    job = w.jobs.get(job_id)
    assert job is not None
    assert (job.owner, job.source, job.status) == ("operators", "s3", JobStatus.CREATED)
    assert len(w.upstream.submitted) == 1
    assert w.upstream.submitted[0]["prompt"].startswith("the same portrait")
    assert w.upstream.submitted[0]["output_format"] == "png"
    assert len(w.jobs.items) == 1


def test_a_new_version_of_a_dropped_object_is_a_new_job() -> None:
    w = world()
    w.bucket.add("img2img/drops/a.json", sidecar(), "application/json")
    first = uploaded(w, "img2img/drops/a.jpeg", image_bytes())
    second = uploaded(w, "img2img/drops/a.jpeg", image_bytes("JPEG", (80, 80)))

    assert [w.service.ingest(first), w.service.ingest(second)] == ["started", "started"]
    assert len(w.upstream.submitted) == 2


def test_sidecar_events_are_ignored() -> None:
    w = world()
    event = uploaded(w, "img2img/drops/a.json", sidecar(), "application/json")

    assert w.service.ingest(event) == "ignored"
    assert w.jobs.items == {}


def test_drop_without_sidecar_is_a_failed_job_with_a_clear_error() -> None:
    w = world()
    event = uploaded(w, "img2img/drops/lonely.jpeg", image_bytes())

    assert [w.service.ingest(event), w.service.ingest(event)] == ["failed", "duplicate"]

    (job,) = w.jobs.items.values()
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "no sidecar img2img/drops/lonely.json" in job.error.message
    assert w.upstream.submitted == []
    assert w.executions(job.job_id) == [{"job_id": job.job_id, "wait_seconds": 1}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (sidecar(strength=3), "strength must be a number from 0.0 to 1.0"),
        (sidecar(image="https://cdn.example/a.jpg"), "image must not be given"),
        (sidecar(num_image=2), "unknown field 'num_image'"),
        (b"{prompt: nope", "is not valid JSON"),
        (b"[1, 2]", "must be a single JSON object"),
        (b'{"prompt": "a", "prompt": "b"}', "the key 'prompt' appears twice"),
        (b'{"prompt": "a\\u0000"}', "prompt must not contain control characters"),
        (b"{}", "prompt is required"),
    ],
)
def test_drop_with_bad_sidecar_fails_with_the_validation_message_and_no_upstream_call(
    content: bytes, message: str
) -> None:
    w = world()
    w.bucket.add("img2img/drops/a.json", content, "application/json")

    assert w.service.ingest(uploaded(w, "img2img/drops/a.jpeg", image_bytes())) == "failed"

    (job,) = w.jobs.items.values()
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.message.startswith("sidecar img2img/drops/a.json")
    assert message in job.error.message
    assert w.upstream.submitted == []


def test_drop_that_is_not_an_image_fails_with_a_clear_error() -> None:
    w = world()
    w.bucket.add("img2img/drops/a.json", sidecar(), "application/json")

    assert (
        w.service.ingest(uploaded(w, "img2img/drops/a.jpeg", b"%PDF-1.7 ...", "binary/octet-stream"))
        == "failed"
    )

    (job,) = w.jobs.items.values()
    assert "not a decodable JPEG, PNG or WebP image" in job.error.message  # type: ignore[union-attr]
    assert w.upstream.submitted == []


# --- expiry -------------------------------------------------------------------------------
def test_a_job_whose_upload_never_arrives_times_out_and_is_notified() -> None:
    w = world()
    ticket = img2img_ticket(w)

    outcome = w.expiring.expire(ticket.id)

    assert (outcome.status, outcome.expired) == ("timeout", True)
    job = w.jobs.get(ticket.id)
    assert job is not None
    assert job.status is JobStatus.TIMEOUT
    assert job.error is not None
    assert "upload never arrived" in job.error.message
    assert w.executions(ticket.id) == [{"job_id": ticket.id, "wait_seconds": 1}]
    # A PUT that still lands afterwards cannot start the expired job.
    late = uploaded(w, f"img2img/owner-1/{ticket.id}.jpeg", image_bytes())
    assert w.service.ingest(late) == "duplicate"
    assert w.upstream.submitted == []


def test_expiry_leaves_started_jobs_and_arrived_uploads_alone() -> None:
    w = world()
    started, queued = img2img_ticket(w), img2img_ticket(w)
    w.service.ingest(uploaded(w, f"img2img/owner-1/{started.id}.jpeg", image_bytes()))
    uploaded(w, f"img2img/owner-1/{queued.id}.jpeg", image_bytes())  # its event is still in the queue

    assert w.expiring.expire(started.id).expired is False
    assert w.expiring.expire(queued.id).expired is False
    assert w.jobs.get(queued.id).status is JobStatus.WAITING_UPLOAD  # type: ignore[union-attr]


# --- notification parsing and the handler --------------------------------------------------
def test_s3_objects_decodes_keys_and_skips_test_events() -> None:
    event = json.loads((EVENTS / "s3_trigger_sqs.json").read_text())
    bodies = [json.loads(record["body"]) for record in event["Records"]]

    objects = [obj for body in bodies for obj in s3_objects(body)]

    assert [o.key for o in objects] == [
        f"img2img/owner-1/{SAMPLE_JOB_ID}.jpeg",
        "img2img/drops/batch-7/portrait 01.jpeg",
    ]
    assert objects[0].bucket == BUCKET
    assert s3_objects({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}) == []


def test_trigger_handler_reports_only_the_poison_message_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    w = world()
    # The waiting job the sample's first message is about, and the drop of the second.
    request = Img2ImgUploadRequest(prompt="x").to_generation_request()
    key = f"img2img/owner-1/{SAMPLE_JOB_ID}.jpeg"
    w.service.submitter.new_job(
        "owner-1", request, status=JobStatus.WAITING_UPLOAD, job_id=SAMPLE_JOB_ID, input_key=key
    )
    w.bucket.add(key, image_bytes())
    w.bucket.add("img2img/drops/batch-7/portrait 01.json", sidecar(), "application/json")
    w.bucket.add("img2img/drops/batch-7/portrait 01.jpeg", image_bytes())
    event = json.loads((EVENTS / "s3_trigger_sqs.json").read_text())
    poison = copy.deepcopy(event["Records"][0])
    poison["messageId"] = "poison-1"
    poison["body"] = "this is not an S3 notification"
    event["Records"].insert(1, poison)
    trigger = load_handler("s3_trigger")
    monkeypatch.setattr(composition, "container", lambda: FakeContainer(w))

    result = trigger.handler(event, Ctx(function_name="s3_trigger"))

    assert result == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert len(w.upstream.submitted) == 2
    assert w.jobs.get(SAMPLE_JOB_ID).status is JobStatus.CREATED  # type: ignore[union-attr]


def test_trigger_handler_fails_when_every_message_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    w = world()
    event = json.loads((EVENTS / "s3_trigger_sqs.json").read_text())
    for record in event["Records"]:
        record["body"] = "this is not an S3 notification"
    trigger = load_handler("s3_trigger")
    monkeypatch.setattr(composition, "container", lambda: FakeContainer(w))

    with pytest.raises(trigger.BatchFailedError, match="all 2 messages failed"):
        trigger.handler(event, Ctx(function_name="s3_trigger"))
    assert w.upstream.submitted == []


def test_expire_upload_handler_returns_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    w = world()
    ticket = img2img_ticket(w)
    expire = load_handler("expire_upload")
    monkeypatch.setattr(composition, "container", lambda: FakeContainer(w))

    out = expire.handler({"job_id": ticket.id}, Ctx(function_name="expire_upload"))

    assert out == {"job_id": ticket.id, "status": "timeout", "expired": True}


# --------------------------------------------------------------------------- moto: the signature
def _sigv4_accepts(url: str, method: str, headers: dict[str, str], secret: str, region: str) -> bool:
    """What S3 does with a presigned URL: recompute the SigV4 signature from the request as sent
    (the signed headers taken from the *request*) and compare. moto skips this check."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = query.pop("X-Amz-Signature")
    sent = {k.lower(): v.strip() for k, v in {**headers, "host": parts.netloc}.items()}
    signed = query["X-Amz-SignedHeaders"].split(";")
    if any(name not in sent for name in signed):
        return False
    canonical = "\n".join(
        [
            method,
            parts.path,
            "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())),
            "".join(f"{name}:{sent[name]}\n" for name in signed),
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    stamp = query["X-Amz-Date"]
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature)


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield S3UploadStore(BUCKET)


def test_presigned_put_signs_content_type_and_length_so_s3_refuses_other_files(
    moto_s3: S3UploadStore,
) -> None:
    url, headers = moto_s3.presigned_put("uploads/o/t/a.jpg", "image/jpeg", 1234, 900)

    assert headers == {"Content-Type": "image/jpeg", "Content-Length": "1234"}
    signed = dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"].split(";")
    assert signed == ["content-length", "content-type", "host"]

    secret = boto3.Session().get_credentials().secret_key  # mock_aws' fake credentials

    def accepts(**sent: str) -> bool:
        return _sigv4_accepts(url, "PUT", sent, secret, "us-east-1")

    assert accepts(**{"Content-Type": "image/jpeg", "Content-Length": "1234"})
    assert not accepts(**{"Content-Type": "image/jpeg", "Content-Length": "1235"})
    assert not accepts(**{"Content-Type": "image/png", "Content-Length": "1234"})
    assert not accepts(**{"Content-Length": "1234"})


def test_output_links_are_sigv4_which_new_buckets_require(moto_s3: S3UploadStore) -> None:
    # S3 refuses SigV2 on buckets created after June 2020, and botocore presigns with SigV2 unless
    # told otherwise: an output link must carry a SigV4 signature, and open.
    outputs = S3OutputStore(BUCKET)
    data = image_bytes()
    outputs.put_stream("outputs/o/j/0.png", iter([data]), "image/png")

    url = outputs.presigned_get("outputs/o/j/0.png", 600)

    query = dict(parse_qsl(urlsplit(url).query))
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert "Signature" not in query  # SigV2's parameter
    assert requests.get(url, timeout=10).content == data


def test_presigned_put_and_get_work_against_moto_s3(moto_s3: S3UploadStore) -> None:
    data = image_bytes()
    url, headers = moto_s3.presigned_put("img2img/o/x.jpeg", "image/jpeg", len(data), 900)

    assert requests.put(url, data=data, headers=headers, timeout=10).status_code == 200

    info = moto_s3.head("img2img/o/x.jpeg")
    assert info is not None
    assert (info.size, info.content_type) == (len(data), "image/jpeg")
    assert moto_s3.read_head("img2img/o/x.jpeg", 4) == data[:4]
    assert moto_s3.read("img2img/o/x.jpeg", 10**6) == data
    assert moto_s3.read("img2img/o/missing.json", 10) is None
    assert moto_s3.head("img2img/o/missing.jpeg") is None
    got = requests.get(moto_s3.presigned_get("img2img/o/x.jpeg", 600), timeout=10)
    assert got.content == data
