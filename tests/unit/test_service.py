"""Domain services against in-memory fakes of the ports (no network, no AWS)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image

from fluxrelay.api.presenter import PredictionPresenter
from fluxrelay.domain.deliveries import WebhookDeliverer
from fluxrelay.domain.dispatch import Dispatcher
from fluxrelay.domain.errors import (
    AmbiguousSubmitError,
    JobStateError,
    NotFoundError,
    UnknownTaskError,
    UnsafeUrlError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from fluxrelay.domain.fail import FailService
from fluxrelay.domain.jobs import WEBHOOK_LOG_LIMIT, JobError, JobStatus
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.notify import NotifyService
from fluxrelay.domain.outputs import OutputService
from fluxrelay.domain.poll import PollService
from fluxrelay.domain.submit import SubmitService
from fluxrelay.models.tasks import CaughtError
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.models.wire import GenerationRequest
from fluxrelay.models.workflow import ResultRoute, WebhookDelivery
from fluxrelay.observability import metrics
from fluxrelay.settings import Settings
from tests.fakes.memory import (
    MemoryOutputSource,
    MemoryOutputStore,
    MemorySlots,
    RecordingNotifier,
    ScriptedSender,
)
from tests.unit.conftest import T0


class FakeUpstream:
    def __init__(self, results: list[Any] | None = None, submit_error: Exception | None = None) -> None:
        self.results = list(results or [])
        self.submit_error = submit_error
        self.submitted: list[dict[str, Any]] = []  # the payloads, as sent
        self.webhooks: list[str | None] = []  # the `?webhook=` of each submit

    def submit(self, payload: Mapping[str, object], *, webhook: str | None = None) -> UpstreamPrediction:
        self.submitted.append(dict(payload))
        self.webhooks.append(webhook)
        if self.submit_error:
            raise self.submit_error
        return UpstreamPrediction(id="a" * 32, status="created")

    def get_result(self, task_id: str) -> UpstreamPrediction:
        item = self.results.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (256, 256)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


def settings(**overrides: Any) -> Settings:
    base = {"JOB_DEADLINE_SECONDS": 60, "POLL_INTERVAL_SECONDS": 1, "POLL_MAX_INTERVAL_SECONDS": 4}
    return Settings(**{**base, **overrides})


def request(**fields: Any) -> GenerationRequest:
    return GenerationRequest.model_validate({"prompt": "a red fox", "size": "256*256", **fields})


def refuse_private(url: str) -> None:
    if "10.0.0." in url:
        raise UnsafeUrlError("webhook URL resolves to a private address")


def lifecycle(world: dict[str, Any], **kw: Any) -> JobLifecycle:
    return JobLifecycle(
        store=world["store"], generation=world["workflow"], settings=settings(**kw), clock=world["clock"]
    )


def dispatcher(world: dict[str, Any], upstream: FakeUpstream, **kw: Any) -> Dispatcher:
    return Dispatcher(
        lifecycle=lifecycle(world, **kw),
        store=world["store"],
        upstream=upstream,
        slots=world["slots"],
        settings=settings(**kw),
        clock=world["clock"],
    )


def submitter(world: dict[str, Any], upstream: FakeUpstream, **kw: Any) -> SubmitService:
    return SubmitService(
        lifecycle=lifecycle(world, **kw),
        dispatcher=dispatcher(world, upstream, **kw),
        webhook_secrets=world["secrets"],
        settings=settings(**kw),
        check_url=refuse_private,
    )


# --- submit -----------------------------------------------------------------------------------
def test_submit_records_job_before_upstream_and_starts_workflow_named_by_job(world: dict[str, Any]) -> None:
    upstream = FakeUpstream()
    job = submitter(world, upstream, EXPECTED_SECONDS_PER_IMAGE=2).submit(
        "alice", request(num_images=2, enable_sync_mode=True), result_base_url="https://api.x"
    )

    stored = world["store"].get(job.job_id)
    assert stored.status is JobStatus.CREATED
    assert stored.upstream_id == "a" * 32
    assert stored.result_url == f"https://api.x/api/v3/predictions/{job.job_id}/result"
    assert stored.deadline_at == T0 + timedelta(seconds=60)
    assert world["workflow"].started == [(job.job_id, {"job_id": job.job_id, "wait_seconds": 4})]
    # Sync mode and base64 are ours: never forwarded, so the upstream returns URLs at once.
    assert "enable_sync_mode" not in upstream.submitted[0]
    assert upstream.submitted[0]["num_images"] == 2


def test_private_webhook_is_refused_before_anything_is_written_or_paid(world: dict[str, Any]) -> None:
    upstream = FakeUpstream()
    with pytest.raises(UnsafeUrlError):
        submitter(world, upstream).submit("alice", request(), webhook_url="https://10.0.0.5/hook")
    assert world["store"].items == {}
    assert upstream.submitted == []


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (UpstreamRejectedError("bad lora", status=400), "upstream_rejected"),
        (UpstreamUnavailableError("connection refused"), "upstream_unavailable"),
    ],
)
def test_failed_submit_is_recorded_as_failed_and_not_resent(
    world: dict[str, Any], error: Exception, error_type: str
) -> None:
    upstream = FakeUpstream(submit_error=error)
    with pytest.raises(type(error)):
        submitter(world, upstream).submit("alice", request())
    (job,) = world["store"].items.values()
    assert job.status is JobStatus.FAILED
    assert job.error.type == error_type
    assert len(upstream.submitted) == 1
    assert world["workflow"].started == []
    # The caller learns of this end from the error answer: the sweeper has nothing to notify.
    assert world["store"].active(10) == []


# --- poll -------------------------------------------------------------------------------------
def make_job(world: dict[str, Any], **req: Any) -> str:
    job = submitter(world, FakeUpstream()).submit("alice", request(**req))
    return job.job_id


def poll_service(world: dict[str, Any], upstream: FakeUpstream) -> PollService:
    return PollService(
        lifecycle=lifecycle(world),
        store=world["store"],
        upstream=upstream,
        dispatcher=dispatcher(world, upstream),
        settings=settings(),
        clock=world["clock"],
    )


def poller(world: dict[str, Any], results: list[Any]) -> PollService:
    return poll_service(world, FakeUpstream(results))


def pred(status: str, **kw: Any) -> UpstreamPrediction:
    return UpstreamPrediction(id="a" * 32, status=status, **kw)


def test_unknown_status_keeps_polling_with_capped_backoff(world: dict[str, Any]) -> None:
    job_id = make_job(world)
    upstream = FakeUpstream([pred("queued-somewhere")] * 5)
    svc = poll_service(world, upstream)
    waits = [svc.check(job_id).wait_seconds for _ in range(5)]
    assert waits == [1, 2, 4, 4, 4]
    assert world["store"].get(job_id).status is JobStatus.CREATED


def test_completed_result_records_outputs_and_moves_to_processing(world: dict[str, Any]) -> None:
    job_id = make_job(world)
    outcome = poller(
        world, [pred("completed", outputs=["https://cdn/x.jpeg"], has_nsfw_contents=[False])]
    ).check(job_id)
    # The workflow goes on to store the outputs; the job stays processing until they are stored.
    assert outcome.next is ResultRoute.STORE_OUTPUTS
    assert outcome.status == "processing"
    job = world["store"].get(job_id)
    assert job.status is JobStatus.PROCESSING
    assert job.upstream_outputs == ["https://cdn/x.jpeg"]


@pytest.mark.parametrize("status", ["failed", "cancelled", "timeout", "deleted"])
def test_terminal_upstream_failure_fails_the_job(world: dict[str, Any], status: str) -> None:
    job_id = make_job(world)
    assert poller(world, [pred(status, error="nsfw")]).check(job_id).status == "failed"
    assert world["store"].get(job_id).error.type == f"upstream_{status}"


def test_transient_upstream_errors_keep_polling_until_the_deadline(world: dict[str, Any]) -> None:
    job_id = make_job(world)
    svc = poller(world, [UpstreamUnavailableError("502")])
    assert svc.check(job_id).status == "created"
    world["clock"].now = T0 + timedelta(seconds=61)
    outcome = svc.check(job_id)
    assert outcome.status == "timeout"
    assert world["store"].get(job_id).status is JobStatus.TIMEOUT


def test_task_unknown_upstream_fails_the_job(world: dict[str, Any]) -> None:
    job_id = make_job(world)
    assert poller(world, [UnknownTaskError("404")]).check(job_id).status == "failed"


def test_a_finished_job_never_moves_backwards(world: dict[str, Any]) -> None:
    job_id = make_job(world)
    FailService(lifecycle(world)).mark_failed(job_id, CaughtError(Error="x", Cause="boom"))
    # A late "completed" from the upstream cannot revive it.
    assert poller(world, [pred("completed", outputs=["u"])]).check(job_id).status == "failed"
    assert world["store"].transition(job_id, JobStatus.COMPLETED) is None
    assert world["store"].get(job_id).status is JobStatus.FAILED


# --- store outputs ----------------------------------------------------------------------------
def outputs_service(
    world: dict[str, Any], files: dict[str, bytes | int], **kw: Any
) -> tuple[OutputService, MemoryOutputStore]:
    bucket = MemoryOutputStore()
    svc = OutputService(
        lifecycle=lifecycle(world, **kw),
        outputs=bucket,
        sources=MemoryOutputSource(files),
        settings=settings(**kw),
    )
    return svc, bucket


def completed_job(world: dict[str, Any], urls: list[str], **req: Any) -> str:
    job_id = make_job(world, **req)
    poller(world, [pred("completed", outputs=urls, has_nsfw_contents=[False] * len(urls))]).check(job_id)
    return job_id


def test_outputs_are_copied_with_content_type_and_job_completes(world: dict[str, Any]) -> None:
    job_id = completed_job(
        world, ["https://cdn/0.png", "https://cdn/1.png"], output_format="png", num_images=2
    )
    svc, bucket = outputs_service(
        world, {"https://cdn/0.png": image_bytes("PNG"), "https://cdn/1.png": image_bytes("PNG")}
    )
    assert svc.store_outputs(job_id).status == "completed"
    assert sorted(bucket.objects) == [f"outputs/{job_id}/0.png", f"outputs/{job_id}/1.png"]
    assert {ct for _, ct in bucket.objects.values()} == {"image/png"}
    assert [o.width for o in world["store"].get(job_id).outputs] == [256, 256]


def test_base64_outputs_are_decoded_and_stored(world: dict[str, Any]) -> None:
    import base64

    job_id = completed_job(world, [base64.b64encode(image_bytes()).decode()])
    svc, bucket = outputs_service(world, {})
    assert svc.store_outputs(job_id).status == "completed"
    assert list(bucket.objects) == [f"outputs/{job_id}/0.jpeg"]


@pytest.mark.parametrize(
    ("served", "fragment"),
    [
        (404, "HTTP 404"),
        (b"<html>not an image</html>", "not a JPEG, PNG or WebP"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a JPEG, PNG or WebP"),  # unreadable
    ],
)
def test_bad_or_missing_outputs_fail_the_job_with_a_clear_error(
    world: dict[str, Any], served: Any, fragment: str
) -> None:
    job_id = completed_job(world, ["https://cdn/0.jpeg"])
    svc, _ = outputs_service(world, {"https://cdn/0.jpeg": served})
    assert svc.store_outputs(job_id).status == "failed"
    job = world["store"].get(job_id)
    assert job.error.type == "output_unavailable"
    assert fragment in job.error.message


@pytest.mark.parametrize(
    ("served", "key", "size"),
    [
        (image_bytes("JPEG", (512, 256)), "0.jpeg", (512, 256)),  # img2img followed its input
        (image_bytes("JPEG", (240, 240)), "0.jpeg", (240, 240)),  # rounded to multiples of 16
        (image_bytes("PNG"), "0.png", (256, 256)),  # another format than asked for
    ],
)
def test_a_paid_output_of_another_size_or_format_is_kept_as_it_is(
    world: dict[str, Any], served: bytes, key: str, size: tuple[int, int]
) -> None:
    job_id = completed_job(world, ["https://cdn/0.jpeg"])
    svc, bucket = outputs_service(world, {"https://cdn/0.jpeg": served})
    assert svc.store_outputs(job_id).status == "completed"
    (output,) = world["store"].get(job_id).outputs
    assert (output.key, (output.width, output.height)) == (f"outputs/{job_id}/{key}", size)
    assert bucket.objects[output.key][0] == served


def test_outputs_over_the_byte_cap_fail_the_job(world: dict[str, Any]) -> None:
    job_id = completed_job(world, ["https://cdn/0.png"], output_format="png")
    big = image_bytes("PNG") + b"\0" * 300_000
    svc, _ = outputs_service(world, {"https://cdn/0.png": big}, MAX_OUTPUT_BYTES=200_000)
    assert svc.store_outputs(job_id).status == "failed"
    assert "larger than" in world["store"].get(job_id).error.message


def checkerboard(fmt: str, size: int = 256, square: int = 8) -> bytes:
    """A sharp black-and-white pattern: any detail that survives obscuring shows up in it."""
    img = Image.new("RGB", (size, size), "white")
    pixels = img.load()
    for x in range(size):
        for y in range(size):
            if (x // square + y // square) % 2:
                pixels[x, y] = (0, 0, 0)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def flagged_job(world: dict[str, Any], fmt: str = "png") -> str:
    job_id = make_job(world, output_format=fmt, num_images=2)
    urls = [f"https://cdn/{n}.{fmt}" for n in (0, 1)]
    poller(world, [pred("completed", outputs=urls, has_nsfw_contents=[True, False])]).check(job_id)
    return job_id


@pytest.mark.parametrize(("fmt", "pillow"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_blur_policy_stores_only_an_obscured_copy_of_a_flagged_output(
    world: dict[str, Any], fmt: str, pillow: str
) -> None:
    job_id = flagged_job(world, fmt)
    files: dict[str, bytes | int] = {f"https://cdn/{n}.{fmt}": checkerboard(pillow) for n in (0, 1)}
    svc, bucket = outputs_service(world, files, NSFW_POLICY="blur")
    assert svc.store_outputs(job_id).status == "completed"
    flagged, clean = (bucket.objects[f"outputs/{job_id}/{n}.{fmt}"][0] for n in (0, 1))
    assert clean == files[f"https://cdn/1.{fmt}"]  # an unflagged output is stored as it came
    with Image.open(io.BytesIO(flagged)) as img:
        assert (img.format, img.size) == (pillow, (256, 256))
        grey = img.convert("L")
    # The 8 px squares are gone, not just softened: what is left is a smooth grey.
    low, high = grey.getextrema()
    assert high - low < 40
    assert [o.nsfw for o in world["store"].get(job_id).outputs] == [True, False]


def test_withhold_policy_never_stores_a_flagged_output_and_the_prediction_says_why(
    world: dict[str, Any],
) -> None:
    job_id = flagged_job(world)
    files: dict[str, bytes | int] = {f"https://cdn/{n}.png": image_bytes("PNG") for n in (0, 1)}
    svc, bucket = outputs_service(world, files, NSFW_POLICY="withhold")
    assert svc.store_outputs(job_id).status == "completed"
    assert list(bucket.objects) == [f"outputs/{job_id}/1.png"]
    assert svc.sources.opened == ["https://cdn/1.png"]  # type: ignore[attr-defined]
    prediction = PredictionPresenter(bucket, settings()).present(world["store"].get(job_id))
    assert len(prediction.outputs) == 1
    assert prediction.has_nsfw_contents == [False]
    assert prediction.withheld is not None
    assert prediction.withheld.count == 1
    assert "1 of 2 outputs flagged as NSFW" in prediction.withheld.reason


def test_flag_policy_stores_flagged_outputs_as_they_came(world: dict[str, Any]) -> None:
    job_id = flagged_job(world)
    files: dict[str, bytes | int] = {f"https://cdn/{n}.png": checkerboard("PNG") for n in (0, 1)}
    svc, bucket = outputs_service(world, files)
    assert svc.store_outputs(job_id).status == "completed"
    assert bucket.objects[f"outputs/{job_id}/0.png"][0] == files["https://cdn/0.png"]
    prediction = PredictionPresenter(bucket, settings()).present(world["store"].get(job_id))
    assert (prediction.has_nsfw_contents, prediction.withheld) == ([True, False], None)


# --- notify -----------------------------------------------------------------------------------
def notifier(
    world: dict[str, Any], statuses: list[int], **kw: Any
) -> tuple[NotifyService, RecordingNotifier, ScriptedSender]:
    sns, sender = RecordingNotifier(), ScriptedSender(statuses)
    s = settings(**{"WEBHOOK_RETRY_SPAN_SECONDS": 100, "WEBHOOK_RETRY_BASE_SECONDS": 5, **kw})
    svc = NotifyService(
        lifecycle=lifecycle(world),
        store=world["store"],
        slots=world["slots"],
        notifier=sns,
        deliverer=deliverer(world, sender, s),
        settings=s,
        clock=world["clock"],
        random=lambda: 0.0,  # the longest wait of each jitter range
    )
    return svc, sns, sender


def deliverer(world: dict[str, Any], sender: ScriptedSender, s: Settings) -> WebhookDeliverer:
    return WebhookDeliverer(
        lifecycle=lifecycle(world),
        store=world["store"],
        sender=sender,
        secrets=world["secrets"],
        presenter=PredictionPresenter(MemoryOutputStore(), s),
        check_url=refuse_private,
        clock=world["clock"],
    )


def failed_job_with_webhook(world: dict[str, Any], url: str = "https://hooks.example/x") -> str:
    job = submitter(world, FakeUpstream()).submit("alice", request(), webhook_url=url)
    world["store"].transition(job.job_id, JobStatus.FAILED, error=JobError(type="t", message="m"))
    return job.job_id


def test_notify_publishes_once_and_retries_the_webhook_with_backoff_until_delivered(
    world: dict[str, Any],
) -> None:
    job_id = failed_job_with_webhook(world)
    svc, sns, sender = notifier(world, [500, 503, 200])
    first = svc.notify(job_id)
    # The workflow's routing value is the state stored in the job.
    assert world["store"].get(job_id).webhook.state == first.webhook
    second = svc.notify(job_id)
    third = svc.notify(job_id)
    assert (first.webhook, first.wait_seconds) == (WebhookDelivery.RETRYING, 5)
    assert (second.webhook, second.wait_seconds) == (WebhookDelivery.RETRYING, 10)
    assert third.webhook == "delivered"
    assert len(sns.messages) == 1
    message, attributes = sns.messages[0]
    assert attributes == {"status": "failed", "owner": "alice", "source": "api"}
    assert message["job_id"] == job_id
    # The webhook body is the prediction object; it is delivered with the owner's secret.
    _, payload, secrets = sender.calls[-1]
    assert payload["id"] == job_id
    assert payload["status"] == "failed"
    assert secrets == [world["secrets"].current("alice")]


@pytest.mark.parametrize(
    ("statuses", "url"),
    [([500, 200], "https://hooks.example/x"), ([500, 410], "https://hooks.example/x"), ([], None)],
    ids=["delivered", "gave up", "no webhook"],
)
def test_a_finished_job_leaves_the_active_index_only_with_its_last_notify(
    world: dict[str, Any], statuses: list[int], url: str | None
) -> None:
    job = submitter(world, FakeUpstream()).submit("alice", request(), webhook_url=url)
    world["store"].transition(job.job_id, JobStatus.FAILED, error=JobError(type="t", message="m"))
    assert world["store"].active(10) == [job.job_id]  # ended, not notified: the sweeper still sees it
    svc, sns, _ = notifier(world, statuses)
    for _ in statuses[:-1]:
        assert svc.notify(job.job_id).webhook is WebhookDelivery.RETRYING
        assert world["store"].active(10) == [job.job_id]  # a redelivery is still due
    assert svc.notify(job.job_id).webhook is not WebhookDelivery.RETRYING
    assert world["store"].active(10) == []
    assert len(sns.messages) == 1


def test_webhook_gives_up_after_the_retry_span(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, _ = notifier(world, [500, 500])
    assert svc.notify(job_id).webhook is WebhookDelivery.RETRYING
    world["clock"].now = T0 + timedelta(seconds=101)
    assert svc.notify(job_id).webhook == "gave_up"
    assert world["store"].get(job_id).webhook.state == "gave_up"


def test_webhook_url_is_checked_again_at_delivery(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    # The URL became unsafe since submit (e.g. DNS now points inside): recorded as a failed attempt.
    world["store"].update(
        job_id, webhook=world["store"].get(job_id).webhook.model_copy(update={"url": "https://10.0.0.9/x"})
    )
    svc, _, sender = notifier(world, [200])
    outcome = svc.notify(job_id)
    assert outcome.webhook is WebhookDelivery.RETRYING
    assert sender.calls == []
    assert "private" in world["store"].get(job_id).webhook.last_error


def test_every_attempt_is_logged_with_its_status_latency_and_next_retry(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, _ = notifier(world, [503, 200])
    svc.notify(job_id)
    world["clock"].now = T0 + timedelta(seconds=5)
    svc.notify(job_id)
    hook = world["store"].get(job_id).webhook
    first, second = hook.log
    assert (first.number, first.at, first.trigger) == (1, T0, "workflow")
    assert (first.status, first.error, first.outcome) == (503, "receiver answered HTTP 503", "will_retry")
    assert first.next_retry_at == T0 + timedelta(seconds=5)
    assert (second.number, second.status, second.error, second.outcome) == (2, 200, None, "delivered")
    assert second.next_retry_at is None
    assert hook.state == "delivered"


def test_the_delivery_log_keeps_only_the_newest_attempts(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    total = WEBHOOK_LOG_LIMIT + 7
    svc, _, _ = notifier(world, [500] * total, WEBHOOK_RETRY_SPAN_SECONDS=10**6)
    for _ in range(total):
        svc.notify(job_id)
    hook = world["store"].get(job_id).webhook
    assert hook.attempts == total
    assert [a.number for a in hook.log] == list(range(8, total + 1))


def test_retry_waits_are_jittered_below_the_backoff(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, _ = notifier(world, [500, 500])
    svc.random = lambda: 1.0  # the shortest wait of the range: half the backoff
    assert svc.notify(job_id).wait_seconds == 3  # ceil(5 * 0.5)
    svc.random = lambda: 0.5
    assert svc.notify(job_id).wait_seconds == 8  # ceil(10 * 0.75)


def test_a_410_gone_answer_stops_retrying_at_once_and_is_counted(
    world: dict[str, Any], given_up_count: Callable[[], float]
) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, sender = notifier(world, [410, 200])
    outcome = svc.notify(job_id)
    assert (outcome.webhook, outcome.wait_seconds) == (WebhookDelivery.GAVE_UP, 0)
    hook = world["store"].get(job_id).webhook
    assert (hook.gave_up_at, hook.gave_up_reason) == (T0, "the receiver answered 410 Gone")
    assert hook.log[-1].outcome == "gave_up"
    assert given_up_count() == 1
    svc.notify(job_id)  # the workflow never tries again
    assert len(sender.calls) == 1


def test_replay_resends_with_the_same_webhook_id_and_is_logged(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, sender = notifier(world, [200, 200])
    svc.notify(job_id)
    world["clock"].now = T0 + timedelta(hours=30)
    hook = deliverer(world, sender, settings()).replay("alice", job_id)
    assert sender.message_ids == [f"msg_{job_id}"] * 2
    assert hook.state == "delivered"
    assert [(a.trigger, a.outcome, a.at) for a in hook.log] == [
        ("workflow", "delivered", T0),
        ("replay", "delivered", T0 + timedelta(hours=30)),
    ]
    assert world["store"].get(job_id).webhook == hook


def test_a_replay_delivers_what_the_workflow_gave_up_on(
    world: dict[str, Any], given_up_count: Callable[[], float]
) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, sender = notifier(world, [500, 500, 200])
    svc.notify(job_id)
    world["clock"].now = T0 + timedelta(seconds=101)
    assert svc.notify(job_id).webhook == "gave_up"
    assert world["store"].get(job_id).webhook.gave_up_reason == "no delivery within the retry span of 100 s"
    assert given_up_count() == 1
    hook = deliverer(world, sender, settings()).replay("alice", job_id)
    assert (hook.state, hook.attempts, hook.log[-1].outcome) == ("delivered", 3, "delivered")


def test_a_replay_answered_410_stops_the_workflow_retries(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, sender = notifier(world, [500, 410])
    assert svc.notify(job_id).webhook is WebhookDelivery.RETRYING
    hook = deliverer(world, sender, settings()).replay("alice", job_id)
    assert (hook.state, hook.log[-1].outcome) == ("gave_up", "gave_up")
    assert svc.notify(job_id).webhook == "gave_up"
    assert len(sender.calls) == 2


def test_a_failed_replay_of_a_delivered_webhook_changes_only_the_log(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, sender = notifier(world, [200, 500])
    svc.notify(job_id)
    hook = deliverer(world, sender, settings()).replay("alice", job_id)
    assert (hook.state, hook.last_status, hook.log[-1].outcome) == ("delivered", 500, "failed")


@pytest.mark.parametrize("case", ["other owner", "unknown id"])
def test_replay_of_a_job_the_caller_does_not_own_is_404(world: dict[str, Any], case: str) -> None:
    job_id = failed_job_with_webhook(world)
    owner, target = ("mallory", job_id) if case == "other owner" else ("alice", "f" * 32)
    sender = ScriptedSender([200])
    with pytest.raises(NotFoundError):
        deliverer(world, sender, settings()).replay(owner, target)
    assert sender.calls == []


def test_replay_needs_a_finished_job_with_a_webhook(world: dict[str, Any]) -> None:
    sender = ScriptedSender([])
    running = submitter(world, FakeUpstream()).submit(
        "alice", request(), webhook_url="https://hooks.example/x"
    )
    silent = submitter(world, FakeUpstream()).submit("alice", request())
    world["store"].transition(silent.job_id, JobStatus.FAILED)
    with pytest.raises(JobStateError, match="is created: its webhook is sent when it finishes"):
        deliverer(world, sender, settings()).replay("alice", running.job_id)
    with pytest.raises(JobStateError, match="has no webhook"):
        deliverer(world, sender, settings()).replay("alice", silent.job_id)
    assert sender.calls == []


def test_two_deliveries_at_once_both_keep_their_attempt(world: dict[str, Any]) -> None:
    job_id = failed_job_with_webhook(world)
    svc, _, sender = notifier(world, [500, 200])
    store = world["store"]
    write = store.update_webhook
    replay = deliverer(world, sender, settings())

    def replay_first(job: str, webhook: Any, *, expected_attempts: int) -> Any:
        # A replay's attempt lands between the workflow attempt's read and its write.
        store.update_webhook = write
        replay.replay("alice", job)
        return write(job, webhook, expected_attempts=expected_attempts)

    store.update_webhook = replay_first
    svc.notify(job_id)
    hook = store.get(job_id).webhook
    assert [(a.number, a.trigger, a.status) for a in hook.log] == [(1, "replay", 200), (2, "workflow", 500)]
    # The replay got through; the workflow's failed attempt does not undo that.
    assert hook.state == "delivered"


@pytest.fixture
def given_up_count() -> Iterator[Callable[[], float]]:
    metrics.clear_metrics()
    yield lambda: sum(metrics.metric_set.get("WebhookDeliveriesGivenUp", {}).get("Value", []))
    metrics.clear_metrics()


# --- global cap on concurrent upstream tasks --------------------------------------------------
def test_jobs_over_the_upstream_cap_wait_in_created_and_are_submitted_when_a_slot_frees(
    world: dict[str, Any],
) -> None:
    world["slots"].capacity = 1
    upstream = FakeUpstream([pred("processing")])
    first = submitter(world, upstream).submit("alice", request())
    second = submitter(world, upstream).submit("alice", request())
    # Given: one slot, two jobs — only the first reached the upstream.
    assert len(upstream.submitted) == 1
    queued = world["store"].get(second.job_id)
    assert queued.status is JobStatus.CREATED
    assert queued.upstream_id is None
    assert world["workflow"].started[1][1]["wait_seconds"] == 1
    poll = poll_service(world, upstream)
    # While the slot is held, polling the queued job sends nothing.
    assert poll.check(second.job_id).status == "created"
    assert len(upstream.submitted) == 1
    # When: the first job finishes and is notified, its slot is released.
    FailService(lifecycle(world)).mark_failed(first.job_id, CaughtError(Error="x", Cause="done"))
    notifier(world, [])[0].notify(first.job_id)
    # Then: the next check submits the queued job, once.
    poll.check(second.job_id)
    assert len(upstream.submitted) == 2
    assert world["store"].get(second.job_id).upstream_id == "a" * 32
    assert world["slots"].held == {second.job_id}


def test_a_dispatch_that_died_midway_is_never_resent_and_awaits_adoption(world: dict[str, Any]) -> None:
    upstream = FakeUpstream()
    job = submitter(world, upstream).new_job("alice", request())
    world["store"].claim(job.job_id, "dispatched_at", T0)  # an earlier attempt got this far
    dispatched = dispatcher(world, upstream).dispatch(job, request())
    assert upstream.submitted == []
    assert (dispatched.status, dispatched.upstream_id, dispatched.error) == (JobStatus.CREATED, None, None)


def test_an_ambiguous_submit_is_not_failed_but_keeps_its_slot_and_starts_the_workflow(
    world: dict[str, Any],
) -> None:
    world["slots"] = MemorySlots(capacity=2)  # with a cap: without one no slot is kept at all
    upstream = FakeUpstream(submit_error=AmbiguousSubmitError("timed out after send"))
    job = submitter(world, upstream).submit("alice", request())
    assert (job.status, job.upstream_id, job.error) == (JobStatus.CREATED, None, None)
    assert len(upstream.submitted) == 1
    assert world["slots"].held == {job.job_id}  # the task may be running upstream
    assert [started for started, _ in world["workflow"].started] == [job.job_id]


def _poll(world: dict[str, Any], upstream: FakeUpstream, **kw: Any) -> PollService:
    return PollService(
        lifecycle=lifecycle(world, **kw),
        store=world["store"],
        upstream=upstream,
        dispatcher=dispatcher(world, upstream, **kw),
        settings=settings(**kw),
        clock=world["clock"],
    )


def test_an_unadopted_ambiguous_submit_fails_after_the_window_and_is_never_resent(
    world: dict[str, Any],
) -> None:
    upstream = FakeUpstream(submit_error=AmbiguousSubmitError("timed out after send"))
    job = submitter(world, upstream).submit("alice", request())
    poll = _poll(world, upstream, AMBIGUOUS_SUBMIT_WINDOW_SECONDS=30)
    world["clock"].now = T0 + timedelta(seconds=29)
    waiting = poll.check(job.job_id)
    assert (waiting.next, waiting.wait_seconds) == (ResultRoute.WAIT, 1)
    world["clock"].now = T0 + timedelta(seconds=30)
    assert poll.check(job.job_id).next is ResultRoute.NOTIFY
    failed = world["store"].get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error.type == "ambiguous_submit"
    assert len(upstream.submitted) == 1


def test_failed_submit_releases_its_slot(world: dict[str, Any]) -> None:
    world["slots"].capacity = 1
    with pytest.raises(UpstreamRejectedError):
        submitter(world, FakeUpstream(submit_error=UpstreamRejectedError("no", status=400))).submit(
            "alice", request()
        )
    assert world["slots"].held == set()


def test_a_slot_leaked_by_a_job_that_never_reached_notify_is_reclaimed(world: dict[str, Any]) -> None:
    world["slots"].capacity = 1
    upstream = FakeUpstream()
    leaked = submitter(world, upstream).submit("alice", request())
    # Its workflow died after the job ended, before Notify released the slot.
    FailService(lifecycle(world)).mark_failed(
        leaked.job_id, CaughtError(Error="States.Timeout", Cause="the workflow timed out")
    )
    assert world["slots"].held == {leaked.job_id}

    queued_behind_it = submitter(world, upstream).submit("alice", request())

    assert world["store"].get(queued_behind_it.job_id).upstream_id is not None
    assert world["slots"].held == {queued_behind_it.job_id}


def test_slots_of_running_jobs_are_never_reclaimed(world: dict[str, Any]) -> None:
    world["slots"].capacity = 1
    upstream = FakeUpstream()
    running = submitter(world, upstream).submit("alice", request())
    queued = submitter(world, upstream).submit("alice", request())
    assert world["store"].get(queued.job_id).upstream_id is None
    assert world["slots"].held == {running.job_id}


def test_a_queued_job_whose_dispatch_cannot_reach_the_upstream_stays_queued(world: dict[str, Any]) -> None:
    world["slots"].capacity = 1
    blocker = submitter(world, FakeUpstream()).submit("alice", request())
    queued = submitter(world, FakeUpstream()).submit("alice", request())
    FailService(lifecycle(world)).mark_failed(blocker.job_id, CaughtError(Error="x", Cause="done"))
    down = FakeUpstream(submit_error=UpstreamUnavailableError("connection refused; nothing was sent"))
    poll = poll_service(world, down)

    # When: the slot frees but the upstream cannot be reached.
    assert poll.check(queued.job_id).status == "created"
    # Then: still queued, claim and slot undone; the next poll submits it once the upstream is back.
    job = world["store"].get(queued.job_id)
    assert (job.status, job.dispatched_at, job.upstream_id) == (JobStatus.CREATED, None, None)
    assert queued.job_id not in world["slots"].held
    down.submit_error = None
    poll.check(queued.job_id)
    assert world["store"].get(queued.job_id).upstream_id == "a" * 32
