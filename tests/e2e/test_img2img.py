"""img2img from uploads on the local stack, over real HTTP and real S3 PUTs.

Everything goes through the deployed wiring: presigned PUT into (emulated) S3 → bucket
notification → Img2ImgQueue → SQS event-source mapping → s3_trigger → upstream (the stand-in) →
workflow → SNS + signed webhook. moto quirks this module works with:

- SQS → Lambda runs synchronously inside the SendMessage (so inside the S3 PUT that sends it), one
  record per invocation; `ReportBatchItemFailures` is ignored (a failed invocation makes the
  whole received batch visible again, a partial answer deletes everything).
- A failed message is received again only when another message arrives; `maxReceiveCount` and
  the dead-letter queue are honoured on that receive.
- moto does not verify S3 presigned-URL signatures: `test_presigned_puts_sign_content_type_and_length`
  verifies the SigV4 signature itself, as S3 would.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx
import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from fluxrelay.domain.uploads import drop_job_id
from fluxrelay_local.config import FAKE_CREDENTIALS, REPO_ROOT
from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, WebhookReceiver, api_for, sns_queue, standin_of, wait_for

BURST = 12
UPSTREAM_CAP = 2
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the default MAX_UPLOAD_BYTES (20 MiB)


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    # A global cap of 2 upstream tasks (the burst test measures it at the stand-in).
    return {"parameters": {"MaxConcurrentUpstreamTasks": str(UPSTREAM_CAP)}}


@pytest.fixture(scope="module")
def system(stack: LocalStack) -> Api:
    """A key of the configured system owner (SYSTEM_OWNER, default "system"): owns operator drops."""
    return api_for(stack, "system")


# --------------------------------------------------------------------------- helpers
def image_bytes(
    fmt: str = "PNG", size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 60, 20)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def submissions(stack: LocalStack) -> list[dict[str, Any]]:
    """What the paid upstream accepted (the stand-in's control route, over HTTP)."""
    response = httpx.get(f"{stack.upstream_url}/_standin/submissions")
    response.raise_for_status()
    return list(response.json()["data"])


def submissions_for(stack: LocalStack, key: str) -> list[dict[str, Any]]:
    """Upstream submissions whose input image is the object `key` (a presigned GET of it)."""
    return [s for s in submissions(stack) if key in unquote(urlsplit(s["input"].get("image") or "").path)]


def job_count(stack: LocalStack) -> int:
    pages = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": "JOB#"}},
            Select="COUNT",
        )
    )
    return sum(page["Count"] for page in pages)


def queue_depth(stack: LocalStack, url: str) -> int:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def s3_notification(stack: LocalStack, key: str) -> str:
    """The body S3 sends to the queue for `key` (as moto and S3 do: key URL-encoded, "+" for spaces)."""
    head = stack.client("s3").head_object(Bucket=stack.bucket, Key=key)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": stack.config.region,
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "img2img",
            "bucket": {"name": stack.bucket, "arn": f"arn:aws:s3:::{stack.bucket}"},
            "object": {
                "key": quote(key, safe="/").replace("%20", "+"),
                "size": head["ContentLength"],
                "eTag": head["ETag"].strip('"'),
            },
        },
    }
    return json.dumps({"Records": [record]})


def sqs_event(*bodies: str) -> tuple[dict[str, Any], list[str]]:
    """An SQS → Lambda event with one record per body; returns it and the message ids."""
    ids = [str(uuid.uuid4()) for _ in bodies]
    records = [
        {
            "messageId": mid,
            "receiptHandle": f"handle-{mid}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:img2img",
            "awsRegion": "us-east-1",
        }
        for mid, body in zip(ids, bodies, strict=True)
    ]
    return {"Records": records}, ids


def sns_events(drain: Callable[[], list[dict[str, Any]]], job_id: str) -> list[dict[str, Any]]:
    """SNS notifications about `job_id`: (message, attributes) merged into one dict per event."""
    found = []
    for envelope in drain():
        message = json.loads(envelope["Message"])
        if message.get("job_id") == job_id:
            attrs = {k: v["Value"] for k, v in (envelope.get("MessageAttributes") or {}).items()}
            found.append({"message": message, "attributes": attrs})
    return found


def wait_sns(drain: Callable[[], list[dict[str, Any]]], job_id: str) -> dict[str, Any]:
    return wait_for(lambda: sns_events(drain, job_id), what=f"the SNS notification of {job_id}")[0]


def put(upload: dict[str, Any], data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """PUT like a client: to the presigned URL, with exactly the given headers, no Authorization."""
    assert upload["method"] == "PUT"
    # moto delivers the S3 notification (SQS -> s3_trigger) inside the PUT: a burst takes seconds.
    headers = upload["headers"] if headers is None else headers
    return httpx.put(upload["url"], content=data, headers=headers, timeout=30)


def img2img_ticket(api: Api, body: dict[str, Any], webhook: str | None = None) -> dict[str, Any]:
    params = {"webhook": webhook} if webhook else None
    response = api.post("/api/v3/img2img/uploads", json=body, params=params)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "created"
    return dict(data)


def upload_key(upload_url: str) -> str:
    """The object key of a path-style presigned URL (`/<bucket>/<key>`)."""
    return unquote(urlsplit(upload_url).path).split("/", 2)[2]


def sigv4_presigned_ok(
    url: str, method: str, headers: dict[str, str], secret: str = FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
) -> bool:
    """Would S3 accept this request? Recomputes the SigV4 query-string signature of a presigned
    URL from the request actually sent (the check moto skips)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query)
    signed = given["X-Amz-SignedHeaders"].split(";")
    sent = {k.lower(): " ".join(v.split()) for k, v in headers.items()} | {"host": parts.netloc}
    if any(h not in sent for h in signed):
        return False
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query) if k != "X-Amz-Signature"
    )
    canonical = "\n".join(
        [
            method,
            quote(unquote(parts.path), safe="/-_.~"),
            canonical_query,
            "".join(f"{h}:{sent[h]}\n" for h in signed),
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = given["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", given["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given["X-Amz-Signature"])


@contextmanager
def bucket_events_held(stack: LocalStack) -> Iterator[None]:
    """No S3 → SQS events inside the block (the bucket's notification configuration is restored
    after it; restoring sends only an s3:TestEvent)."""
    s3 = stack.client("s3")
    saved = s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration=saved)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """Change the handlers' environment for one test (they share this process), then restore it."""
    from fluxrelay.composition import container
    from fluxrelay.settings import get_settings

    def clear() -> None:
        get_settings.cache_clear()
        container.cache_clear()

    def apply(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        clear()

    yield apply
    monkeypatch.undo()
    clear()


# --------------------------------------------------------------------------- upload API
def test_upload_ticket_put_download_and_img2img_submit(stack: LocalStack, alice: Api) -> None:
    photo = image_bytes("PNG")
    response = alice.post(
        "/api/v3/media/uploads",
        json={"filename": "photo.png", "size": len(photo), "content_type": "image/png"},
    )
    assert response.status_code == 200, response.text
    ticket = response.json()["data"]
    assert ticket["upload"]["method"] == "PUT"
    assert ticket["upload"]["headers"] == {"Content-Type": "image/png", "Content-Length": str(len(photo))}
    assert upload_key(ticket["upload"]["url"]).startswith("uploads/alice/")

    assert put(ticket["upload"], photo).status_code == 200
    assert httpx.get(ticket["download_url"]).content == photo

    before = len(submissions(stack))
    submitted = alice.submit(
        {"prompt": "the same photo, as a woodcut", "image": ticket["download_url"], "size": "512*512"}
    )
    assert submitted.status_code == 200, submitted.text
    data = alice.wait_finished(submitted.json()["data"]["id"])
    assert data["status"] == "completed", data
    new = submissions(stack)[before:]
    assert [s["input"]["image"] for s in new] == [ticket["download_url"]]


def test_binary_upload_then_img2img_submit(stack: LocalStack, alice: Api) -> None:
    photo = image_bytes("JPEG", colour=(10, 120, 200))
    response = alice.post("/api/v3/media/upload/binary", files={"file": ("cat.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    uploaded = response.json()["data"]
    assert (uploaded["type"], uploaded["filename"], uploaded["size"]) == ("image", "cat.jpg", len(photo))
    assert httpx.get(uploaded["download_url"]).content == photo

    before = len(submissions(stack))
    submitted = alice.submit(
        {"prompt": "cat, oil painting", "image": uploaded["download_url"], "size": "512*512"}
    )
    assert submitted.status_code == 200, submitted.text
    assert alice.wait_finished(submitted.json()["data"]["id"])["status"] == "completed"
    assert [s["input"]["image"] for s in submissions(stack)[before:]] == [uploaded["download_url"]]

    not_an_image = alice.post(
        "/api/v3/media/upload/binary", files={"file": ("x.jpg", b"hello", "image/jpeg")}
    )
    assert not_an_image.status_code == 400, not_an_image.text


def test_presigned_puts_sign_content_type_and_length(stack: LocalStack, alice: Api) -> None:
    """moto stores a PUT whatever its headers; S3 checks the SigV4 signature, which covers
    Content-Type and Content-Length. This verifies that signature as S3 would."""
    photo = image_bytes("PNG")
    ticket = alice.post(
        "/api/v3/media/uploads", json={"filename": "p.png", "size": len(photo), "content_type": "image/png"}
    ).json()["data"]
    by_upload = img2img_ticket(
        alice, {"prompt": "p", "content_type": "image/png", "content_length": len(photo)}
    )
    for upload in (ticket["upload"], by_upload["upload"]):
        signed = dict(parse_qsl(urlsplit(upload["url"]).query))["X-Amz-SignedHeaders"].split(";")
        assert {"content-type", "content-length", "host"} <= set(signed)
        right = upload["headers"]
        assert sigv4_presigned_ok(upload["url"], "PUT", right)
        assert not sigv4_presigned_ok(upload["url"], "PUT", right | {"Content-Type": "image/jpeg"})
        assert not sigv4_presigned_ok(upload["url"], "PUT", right | {"Content-Length": str(len(photo) + 1)})
        assert not sigv4_presigned_ok(upload["url"], "PUT", {"Content-Length": right["Content-Length"]})
        assert not sigv4_presigned_ok(upload["url"], "GET", right)


def test_upload_ticket_limits_are_checked_before_signing(alice: Api) -> None:
    too_big = alice.post(
        "/api/v3/media/uploads",
        json={"filename": "big.png", "size": MAX_UPLOAD_BYTES + 1, "content_type": "image/png"},
    )
    assert too_big.status_code == 400, too_big.text
    assert "size" in too_big.json()["message"], too_big.text
    wrong_type = alice.post(
        "/api/v3/media/uploads", json={"filename": "a.gif", "size": 10, "content_type": "image/gif"}
    )
    assert wrong_type.status_code == 400, wrong_type.text
    assert "content_type" in wrong_type.json()["message"], wrong_type.text


# --------------------------------------------------------------------------- img2img by upload
def test_img2img_by_upload_end_to_end_with_signed_webhook(stack: LocalStack, alice: Api) -> None:
    secret = alice.get("/api/v3/webhook/secret").json()["data"]["secret"]
    photo = image_bytes("JPEG", size=(96, 64))
    with WebhookReceiver() as hook:
        ticket = img2img_ticket(
            alice,
            {
                "prompt": "make it autumn",
                "strength": 0.55,
                "size": "512*384",
                "seed": 7,
                "output_format": "png",
                "content_type": "image/jpeg",
            },
            webhook=hook.url,
        )
        job_id = ticket["id"]
        key = upload_key(ticket["upload"]["url"])
        assert key == f"img2img/alice/{job_id}.jpeg"
        assert alice.result(job_id).json()["data"]["status"] == "created"  # waiting for its input
        assert submissions_for(stack, key) == []

        assert put(ticket["upload"], photo).status_code == 200  # the PUT itself starts the job
        delivery = hook.wait(1)[0]

    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert (payload["id"], payload["status"]) == (job_id, "completed"), payload
    data = alice.result(job_id).json()["data"]
    assert data["status"] == "completed", data
    assert len(data["outputs"]) == 1, data
    assert [urlsplit(u).path for u in data["outputs"]] == [urlsplit(u).path for u in payload["outputs"]]
    output = Image.open(io.BytesIO(httpx.get(data["outputs"][0]).content))
    assert (output.format, output.size) == ("PNG", (512, 384))

    [sent] = submissions_for(stack, key)
    assert {k: sent["input"][k] for k in ("prompt", "strength", "size", "seed")} == {
        "prompt": "make it autumn",
        "strength": 0.55,
        "size": "512*384",
        "seed": 7,
    }
    # The upstream fetches the input through a presigned GET of the uploaded object.
    assert httpx.get(sent["input"]["image"]).content == photo


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x", "num_images": 9}, "num_images"),
        ({"prompt": "x", "image": "https://example.com/a.png"}, "image"),
        ({"prompt": "x", "content_type": "image/gif"}, "content_type"),
        ({"prompt": "x", "content_length": MAX_UPLOAD_BYTES + 1}, "content_length"),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "   "}, "prompt"),
    ],
)
def test_img2img_by_upload_bad_params_are_400_before_any_upload(
    stack: LocalStack, alice: Api, body: dict[str, Any], field: str
) -> None:
    sfn = stack.client("stepfunctions")
    expiry_arn = stack.deployed.state_machines["UploadExpiryStateMachine"]  # type: ignore[union-attr]
    jobs, sent = job_count(stack), len(submissions(stack))
    timers = len(sfn.list_executions(stateMachineArn=expiry_arn)["executions"])

    response = alice.post("/api/v3/img2img/uploads", json=body)

    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert response.json()["data"] is None
    assert job_count(stack) == jobs
    assert len(sfn.list_executions(stateMachineArn=expiry_arn)["executions"]) == timers
    assert len(submissions(stack)) == sent


# --------------------------------------------------------------------------- operator drops
def test_operator_drop_with_sidecar_runs_as_the_system_owner(stack: LocalStack, system: Api) -> None:
    s3 = stack.client("s3")
    sidecar = json.loads((REPO_ROOT / "events" / "img2img_sidecar.json").read_text())
    image_key = f"img2img/drops/{uuid.uuid4().hex[:8]}/portrait 01.png"  # a space: URL-encoded in events
    photo = image_bytes("PNG", size=(80, 80))
    with sns_queue(stack) as drain:
        s3.put_object(
            Bucket=stack.bucket,
            Key=image_key.rsplit(".", 1)[0] + ".json",
            Body=json.dumps(sidecar).encode(),
            ContentType="application/json",
        )
        s3.put_object(Bucket=stack.bucket, Key=image_key, Body=photo, ContentType="image/png")
        etag = s3.head_object(Bucket=stack.bucket, Key=image_key)["ETag"].strip('"')
        job_id = drop_job_id(stack.bucket, image_key, etag)

        data = system.wait_finished(job_id)
        event = wait_sns(drain, job_id)

    assert data["status"] == "completed", data
    assert data["outputs"], data
    assert Image.open(io.BytesIO(httpx.get(data["outputs"][0]).content)).format == "PNG"
    assert event["attributes"] == {"status": "completed", "owner": "system", "source": "s3"}
    assert event["message"]["source"] == "s3"
    assert event["message"]["owner"] == "system"
    [sent] = submissions_for(stack, image_key)
    assert {k: sent["input"][k] for k in sidecar} == sidecar
    assert httpx.get(sent["input"]["image"]).content == photo


# --------------------------------------------------------------------------- at least once
def test_duplicate_s3_events_give_one_job_and_one_upstream_submission(
    stack: LocalStack, alice: Api, system: Api
) -> None:
    sqs = stack.client("sqs")
    queue_url = stack.info["img2img_queue_url"]
    # An img2img-by-upload job and an operator drop, each completed once.
    ticket = img2img_ticket(alice, {"prompt": "dup", "content_type": "image/png", "size": "256*256"})
    upload = upload_key(ticket["upload"]["url"])
    assert put(ticket["upload"], image_bytes("PNG")).status_code == 200
    assert alice.wait_finished(ticket["id"])["status"] == "completed"

    drop = f"img2img/drops/{uuid.uuid4().hex[:8]}/dup shot.png"
    s3 = stack.client("s3")
    s3.put_object(
        Bucket=stack.bucket, Key=drop[:-4] + ".json", Body=b'{"prompt": "dup drop", "size": "256*256"}'
    )
    s3.put_object(
        Bucket=stack.bucket, Key=drop, Body=image_bytes("PNG", colour=(1, 2, 3)), ContentType="image/png"
    )
    drop_id = drop_job_id(
        stack.bucket, drop, s3.head_object(Bucket=stack.bucket, Key=drop)["ETag"].strip('"')
    )
    assert system.wait_finished(drop_id)["status"] == "completed"
    jobs = job_count(stack)
    assert len(submissions_for(stack, upload)) == 1
    assert len(submissions_for(stack, drop)) == 1

    # S3 redelivers the same notifications (twice through the queue, twice straight to the function).
    for key in (upload, drop):
        body = s3_notification(stack, key)
        for _ in range(2):
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        event, _ = sqs_event(body, body)
        assert stack.invoke("S3TriggerFunction", event) == {"batchItemFailures": []}

    assert job_count(stack) == jobs
    assert len(submissions_for(stack, upload)) == 1
    assert len(submissions_for(stack, drop)) == 1
    assert alice.result(ticket["id"]).json()["data"]["status"] == "completed"
    assert system.result(drop_id).json()["data"]["status"] == "completed"
    assert queue_depth(stack, queue_url) == 0
    assert queue_depth(stack, stack.info["dlq_url"]) == 0


# --------------------------------------------------------------------------- bad inputs
def _fails_without_upstream_call(
    stack: LocalStack, api: Api, job_id: str, key: str, drain: Callable[[], list[dict[str, Any]]]
) -> dict[str, Any]:
    data = api.wait_finished(job_id)
    assert data["status"] == "failed", data
    event = wait_sns(drain, job_id)
    assert event["attributes"]["status"] == "failed"
    assert event["message"]["error"]["message"] == data["error"]
    assert submissions_for(stack, key) == []
    return data


def test_non_image_upload_fails_clearly_without_upstream_call(stack: LocalStack, alice: Api) -> None:
    sent = len(submissions(stack))
    with WebhookReceiver() as hook, sns_queue(stack) as drain:
        ticket = img2img_ticket(alice, {"prompt": "x", "content_type": "image/png"}, webhook=hook.url)
        assert put(ticket["upload"], b"%PDF-1.7 definitely not a picture").status_code == 200
        data = _fails_without_upstream_call(
            stack, alice, ticket["id"], upload_key(ticket["upload"]["url"]), drain
        )
        assert hook.wait(1)[0].json()["status"] == "failed"
    assert "not usable" in data["error"], data["error"]
    assert "image" in data["error"], data["error"]
    assert len(submissions(stack)) == sent


def test_image_sent_with_the_wrong_content_type_fails_without_upstream_call(
    stack: LocalStack, alice: Api
) -> None:
    # The ticket signs Content-Type: image/png; S3 would answer 403 to this PUT, moto stores it.
    # The trigger still refuses a file whose bytes contradict the type it was stored with.
    # moto sends the S3 event before it applies the object's Content-Type (S3 sends it once the
    # object is complete), so the event is held back during the PUT and then delivered as S3 would.
    ticket = img2img_ticket(alice, {"prompt": "x", "content_type": "image/png"})
    key = upload_key(ticket["upload"]["url"])
    with sns_queue(stack) as drain:
        with bucket_events_held(stack):
            response = put(ticket["upload"], image_bytes("PNG"), headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200
        assert alice.result(ticket["id"]).json()["data"]["status"] == "created"
        stack.client("sqs").send_message(
            QueueUrl=stack.info["img2img_queue_url"], MessageBody=s3_notification(stack, key)
        )
        data = _fails_without_upstream_call(
            stack, alice, ticket["id"], upload_key(ticket["upload"]["url"]), drain
        )
    assert data["error"] == "the uploaded file is a PNG image but was sent as image/jpeg"


def test_oversized_drop_fails_clearly_without_upstream_call(stack: LocalStack, system: Api) -> None:
    s3 = stack.client("s3")
    key = f"img2img/drops/{uuid.uuid4().hex[:8]}/huge.jpeg"
    # A JPEG header, then padding to one byte over the 20 MiB limit (checked before any read).
    big = image_bytes("JPEG")
    big += b"\0" * (MAX_UPLOAD_BYTES + 1 - len(big))
    with sns_queue(stack) as drain:
        s3.put_object(Bucket=stack.bucket, Key=key[:-5] + ".json", Body=b'{"prompt": "huge"}')
        s3.put_object(Bucket=stack.bucket, Key=key, Body=big, ContentType="image/jpeg")
        job_id = drop_job_id(
            stack.bucket, key, s3.head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
        )
        data = _fails_without_upstream_call(stack, system, job_id, key, drain)
    assert data["error"] == f"the uploaded file is {len(big)} bytes; the limit is {MAX_UPLOAD_BYTES} bytes"


def test_drop_with_a_bad_sidecar_fails_clearly_without_upstream_call(stack: LocalStack, system: Api) -> None:
    s3 = stack.client("s3")
    key = f"img2img/drops/{uuid.uuid4().hex[:8]}/bad.png"
    sidecar_key = key[:-4] + ".json"
    with sns_queue(stack) as drain:
        s3.put_object(
            Bucket=stack.bucket, Key=sidecar_key, Body=b'{"prompt": "x", "num_images": 9, "mood": "sad"}'
        )
        s3.put_object(Bucket=stack.bucket, Key=key, Body=image_bytes("PNG"), ContentType="image/png")
        job_id = drop_job_id(
            stack.bucket, key, s3.head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
        )
        data = _fails_without_upstream_call(stack, system, job_id, key, drain)
    assert data["error"].startswith(f"sidecar {sidecar_key}: "), data["error"]
    assert "num_images" in data["error"], data["error"]
    assert "mood" in data["error"], data["error"]


# --------------------------------------------------------------------------- bounded concurrency
def _peak_overlap(windows: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    peak = running = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start: half-open windows
        running += step
        peak = max(peak, running)
    return peak


def test_a_burst_of_uploads_never_exceeds_the_upstream_cap(stack: LocalStack, alice: Api) -> None:
    assert stack.deployed is not None
    # The template wires both limits: the global upstream cap and the trigger's SQS concurrency.
    caps = {f.environment["MAX_CONCURRENT_UPSTREAM_TASKS"] for f in stack.deployed.functions.values()}
    assert caps == {stack.deployed.parameters["MaxConcurrentUpstreamTasks"]} == {str(UPSTREAM_CAP)}
    [mapping] = [
        r["Properties"]
        for r in stack.deployed.cfn_template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "Img2ImgMaxConcurrency"}}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert int(stack.deployed.parameters["Img2ImgMaxConcurrency"]) >= 2

    tickets = [
        img2img_ticket(alice, {"prompt": f"burst {n}", "size": "256*256", "content_type": "image/png"})
        for n in range(BURST)
    ]
    photos = [image_bytes("PNG", colour=(n * 20, 0, 0)) for n in range(BURST)]
    # Upstream tasks long enough (0.5 s) to outlast a job's own overhead on this one-process stack:
    # without the cap, twelve concurrent PUTs would overlap far beyond 2 at the stand-in.
    standin = standin_of(stack)
    saved_duration, standin.seconds_per_image = standin.seconds_per_image, 0.5
    try:
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            statuses = list(
                pool.map(
                    lambda tp: put(tp[0]["upload"], tp[1]).status_code, zip(tickets, photos, strict=True)
                )
            )
        assert statuses == [200] * BURST
        finished = [alice.wait_finished(t["id"], timeout=60) for t in tickets]
    finally:
        standin.seconds_per_image = saved_duration
    assert [d["status"] for d in finished] == ["completed"] * BURST

    keys = [upload_key(t["upload"]["url"]) for t in tickets]
    task_ids = []
    for key in keys:
        [sent] = submissions_for(stack, key)
        task_ids.append(sent["id"])
    # The stand-in's own task records: a task is upstream from its submit until it ends.
    windows = [(task.submitted_at, task.ends_at) for task in map(standin.task, task_ids)]
    assert all(end is not None for _, end in windows)
    assert _peak_overlap(windows) == UPSTREAM_CAP  # type: ignore[arg-type]


# --------------------------------------------------------------------------- poison message
def test_poison_message_ends_in_the_dead_letter_queue(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    queue_url, dlq_url = stack.info["img2img_queue_url"], stack.info["dlq_url"]
    assert dlq_url.rsplit("/", 1)[-1].startswith("fluxrelay-local-Img2ImgDeadLetterQueue")
    redrive = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    max_receives = int(redrive["maxReceiveCount"])
    harmless = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": stack.bucket})
    poison = "this is not an S3 notification {"

    # What the function reports for a mixed batch (moto itself ignores partial batch answers).
    event, ids = sqs_event(harmless, poison, harmless)
    assert stack.invoke("S3TriggerFunction", event) == {"batchItemFailures": [{"itemIdentifier": ids[1]}]}

    # Through the queue: the poison message fails each time it is received; moto receives it
    # again only when another message arrives, so harmless test events drive the redeliveries.
    sqs.send_message(QueueUrl=queue_url, MessageBody=poison)
    for _ in range(max_receives + 2):
        if queue_depth(stack, dlq_url):
            break
        sqs.send_message(QueueUrl=queue_url, MessageBody=harmless)
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in dead] == [poison]
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= max_receives
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=dead[0]["ReceiptHandle"])
    # Nothing else is stuck: one more arrival drains the harmless messages made visible again.
    sqs.send_message(QueueUrl=queue_url, MessageBody=harmless)
    assert queue_depth(stack, queue_url) == 0


# --------------------------------------------------------------------------- expiry
def test_upload_that_never_arrives_expires_and_is_notified(
    stack: LocalStack, alice: Api, settings_env: Callable[[dict[str, str]], None]
) -> None:
    settings_env({"UPLOAD_WINDOW_SECONDS": "1"})
    sfn = stack.client("stepfunctions")
    expiry_arn = stack.deployed.state_machines["UploadExpiryStateMachine"]  # type: ignore[union-attr]
    with WebhookReceiver() as hook, sns_queue(stack) as drain:
        ticket = img2img_ticket(
            alice, {"prompt": "never uploaded", "content_type": "image/png"}, webhook=hook.url
        )
        job_id = ticket["id"]
        assert dict(parse_qsl(urlsplit(ticket["upload"]["url"]).query))["X-Amz-Expires"] == "1"

        data = alice.wait_finished(job_id)
        event = wait_sns(drain, job_id)
        delivery = hook.wait(1)[0]

    assert data["status"] == "timeout", data
    assert data["error"].startswith("upload never arrived"), data["error"]
    assert event["attributes"]["status"] == "timeout"
    assert delivery.json()["status"] == "timeout"
    assert delivery.json()["id"] == job_id
    execution = sfn.describe_execution(
        executionArn=expiry_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    )
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {"job_id": job_id, "status": "timeout", "expired": True}

    # A PUT that comes too late (S3 would refuse the expired URL; moto does not) starts nothing.
    key = upload_key(ticket["upload"]["url"])
    stack.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=image_bytes("PNG"), ContentType="image/png"
    )
    assert alice.result(job_id).json()["data"]["status"] == "timeout"
    assert submissions_for(stack, key) == []
