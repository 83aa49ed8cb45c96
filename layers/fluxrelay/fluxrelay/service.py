"""The domain services: submit a job, poll it, copy its outputs, fail it, notify about it.

Everything the two entry points (HTTP API and S3 trigger) share is here, so both give the same
guarantees: the job is written before anything is sent upstream, the upstream submit is sent
once, every status change is conditional, and every accepted job ends notified.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fluxrelay import images
from fluxrelay.errors import (
    AmbiguousSubmitError,
    FluxRelayError,
    JobStateError,
    NotFoundError,
    OutputUnavailableError,
    UnknownTaskError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from fluxrelay.jobs import JobError, JobItem, JobStatus, OutputItem, WebhookState, new_job_id, utcnow
from fluxrelay.models import GenerationRequest, Prediction, PredictionUrls, Timings
from fluxrelay.observability import logger
from fluxrelay.ports import (
    JobStore,
    Notifier,
    OutputSource,
    OutputStore,
    SlotPool,
    Upstream,
    WebhookSecrets,
    WebhookSender,
    Workflow,
)
from fluxrelay.settings import Settings

Clock = Callable[[], datetime]
UrlCheck = Callable[[str], Any]

# The fields we never forward: we implement sync mode and base64 ourselves, and always want
# URLs upstream so outputs can be streamed into our bucket.
_GATEWAY_ONLY_FIELDS = ("enable_sync_mode", "enable_base64_output")


def output_key(job_id: str, index: int, fmt: str) -> str:
    return f"outputs/{job_id}/{index}.{images.EXTENSIONS[fmt]}"


# --------------------------------------------------------------------------- submit
@dataclass
class SubmitService:
    """Validate → record → submit once → start the workflow."""

    store: JobStore
    dispatcher: Dispatcher
    workflow: Workflow
    webhook_secrets: WebhookSecrets
    settings: Settings
    check_url: UrlCheck
    clock: Clock = utcnow

    def new_job(
        self,
        owner: str,
        request: GenerationRequest,
        *,
        source: str = "api",
        webhook_url: str | None = None,
        result_base_url: str = "",
        status: JobStatus = JobStatus.CREATED,
        job_id: str | None = None,
        input_key: str | None = None,
    ) -> JobItem:
        """Check the webhook URL and write the job item (nothing is sent upstream yet)."""
        if webhook_url:
            # Refused before paying: a URL we must never post to (SSRF guard). Image and LoRA
            # URLs are fetched by the upstream, not by us; the request model checks their syntax.
            self.check_url(webhook_url)
            # Make sure the owner's signing secret exists before a webhook can ever be due.
            self.webhook_secrets.current(owner)
        now = self.clock()
        jid = job_id or new_job_id()
        job = JobItem(
            job_id=jid,
            owner=owner,
            source=source,
            request=request.model_dump(mode="json"),
            status=status,
            created_at=now,
            updated_at=now,
            webhook=WebhookState(url=webhook_url) if webhook_url else None,
            result_url=f"{result_base_url.rstrip('/')}/api/v3/predictions/{jid}/result"
            if result_base_url
            else "",
            input_key=input_key,
            deadline_at=now + timedelta(seconds=self.settings.job_deadline_seconds),
            expires_at=int((now + timedelta(days=self.settings.job_ttl_days)).timestamp()),
        )
        self.store.create(job)
        return job

    def submit(self, owner: str, request: GenerationRequest, **job_options: Any) -> JobItem:
        """Record the job (`job_options` as for `new_job`), then submit it and start its workflow."""
        return self.start(self.new_job(owner, request, **job_options), request)

    def start(self, job: JobItem, request: GenerationRequest) -> JobItem:
        """Send a recorded job upstream (once, when an upstream slot is free) and start its
        workflow. Without a free slot the job stays `created` and the workflow submits it later."""
        job = self.dispatcher.dispatch(job, request)
        if job.upstream_id:
            first_wait = self.settings.first_poll_seconds(request.num_images)
        else:
            first_wait = self.settings.poll_interval_seconds
        arn = self.workflow.start(job.job_id, {"job_id": job.job_id, "wait_seconds": first_wait})
        return self.store.update(job.job_id, execution_arn=arn)


@dataclass
class Dispatcher:
    """Submits a job upstream exactly once, within the global cap on concurrent upstream tasks."""

    store: JobStore
    upstream: Callable[[], Upstream]
    slots: SlotPool
    settings: Settings
    clock: Clock = utcnow

    def dispatch(
        self, job: JobItem, request: GenerationRequest, *, requeue_if_unsent: bool = False
    ) -> JobItem:
        """Returns the job with `upstream_id` set, or unchanged when it stays queued: no slot is
        free, or (`requeue_if_unsent`, for jobs the workflow dispatches) the upstream was certainly
        not reached (connection refused, 429). Other failures fail the job and are raised."""
        if not self.slots.acquire(job.job_id) and not (self._reap() and self.slots.acquire(job.job_id)):
            logger.info("upstream concurrency cap reached; job queued")
            return job
        if not self.store.claim(job.job_id, "dispatched_at", self.clock()):
            # A previous attempt got as far as sending (e.g. the function died before recording
            # the upstream id): the task may exist upstream, so never send it again.
            error = AmbiguousSubmitError("an earlier submit attempt for this job did not finish")
            self._record_failure(job, error)
            raise error
        payload = request.upstream_payload()
        for field in _GATEWAY_ONLY_FIELDS:
            payload.pop(field, None)
        try:
            task = self.upstream().submit(payload)
        except (UpstreamUnavailableError, UpstreamRateLimitedError) as exc:
            if not requeue_if_unsent:
                self._record_failure(job, exc)
                raise
            # Nothing was created upstream: undo the claim and the slot, try again next poll.
            logger.warning("upstream not reachable; job stays queued", extra={"reason": exc.message})
            self.store.update(job.job_id, dispatched_at=None)
            self.slots.release(job.job_id)
            return job
        except UpstreamError as exc:
            self._record_failure(job, exc)
            raise
        now = self.clock()
        logger.info("job submitted", extra={"upstream_id": task.id, "num_images": request.num_images})
        return self.store.update(
            job.job_id,
            upstream_id=task.id,
            upstream_status=task.status,
            submitted_at=now,
            deadline_at=now + timedelta(seconds=self.settings.job_deadline_seconds),
        )

    def _reap(self) -> bool:
        """Free the slots of jobs that ended without reaching Notify (a workflow that died or
        timed out as a whole); without this a leaked slot would block the queue for good."""
        stale = [held for held in self.slots.holders() if _is_finished_or_gone(self.store, held)]
        for job_id in stale:
            logger.warning("released the upstream slot of a finished job", extra={"stale_job_id": job_id})
            self.slots.release(job_id)
        return bool(stale)

    def _record_failure(self, job: JobItem, exc: UpstreamError) -> None:
        if isinstance(exc, AmbiguousSubmitError):
            error = JobError(
                type="ambiguous_submit",
                message=(
                    "the upstream did not confirm the submission; the task may exist there and be "
                    "billed, so it was not resent. Submit again only if you accept a second charge."
                ),
            )
        elif isinstance(exc, UpstreamRejectedError):
            error = JobError(type="upstream_rejected", message=exc.message)
        elif isinstance(exc, UpstreamRateLimitedError):
            error = JobError(type="upstream_rate_limited", message=exc.message, retryable=True)
        else:
            error = JobError(type="upstream_unavailable", message=exc.message, retryable=exc.retryable)
        self.store.transition(job.job_id, JobStatus.FAILED, error=error, finished_at=self.clock())
        self.slots.release(job.job_id)
        logger.info("upstream submit failed", extra={"error_type": error.type})


# --------------------------------------------------------------------------- poll
@dataclass(frozen=True)
class CheckOutcome:
    job_id: str
    status: str
    wait_seconds: int


@dataclass
class PollService:
    """One check of the upstream result, and the wait before the next one."""

    store: JobStore
    upstream: Callable[[], Upstream]
    dispatcher: Dispatcher
    settings: Settings
    clock: Clock = utcnow

    def check(self, job_id: str) -> CheckOutcome:
        job = _load(self.store, job_id)
        if job.status.terminal:
            return CheckOutcome(job_id, job.status.value, 0)
        now = self.clock()
        if job.deadline_at and now >= job.deadline_at:
            return self._time_out(job, now)
        if not job.upstream_id:
            return self._dispatch_queued(job, now)
        try:
            result = self.upstream().get_result(job.upstream_id)
        except UnknownTaskError:
            return self._finish(
                job,
                JobStatus.FAILED,
                JobError(type="upstream_task_gone", message="the upstream no longer knows this task"),
            )
        except (UpstreamUnavailableError, UpstreamRateLimitedError) as exc:
            # The client already retried with backoff; keep polling until the deadline instead of
            # failing a paid job because the upstream had a bad minute.
            logger.warning("upstream result unavailable, will poll again", extra={"reason": exc.message})
            return self._again(job, now)

        if result.is_completed:
            fields: dict[str, Any] = {
                "upstream_status": result.status,
                "upstream_outputs": list(result.outputs),
                "nsfw": list(result.has_nsfw_contents),
                "inference_ms": _inference_ms(result),
            }
            if job.status is JobStatus.CREATED:
                self.store.transition(job_id, JobStatus.PROCESSING, processing_at=now, **fields)
            else:
                self.store.update(job_id, **fields)
            return CheckOutcome(job_id, JobStatus.COMPLETED.value, 0)
        if result.is_failed:
            message = result.error or f"the upstream task ended with status {result.status}"
            return self._finish(
                job, JobStatus.FAILED, JobError(type=f"upstream_{result.status}", message=message)
            )
        if result.status == "processing" and job.status is JobStatus.CREATED:
            self.store.transition(
                job_id, JobStatus.PROCESSING, processing_at=now, upstream_status=result.status
            )
        return self._again(job, now)

    def _dispatch_queued(self, job: JobItem, now: datetime) -> CheckOutcome:
        """A job waiting for an upstream slot: try to submit it now."""
        request = GenerationRequest.model_validate(job.request)
        try:
            dispatched = self.dispatcher.dispatch(job, request, requeue_if_unsent=True)
        except UpstreamError:
            return CheckOutcome(job.job_id, _load(self.store, job.job_id).status.value, 0)
        if dispatched.upstream_id:
            wait = self.settings.first_poll_seconds(request.num_images)
            return CheckOutcome(job.job_id, dispatched.status.public, wait)
        return CheckOutcome(job.job_id, job.status.public, self.settings.poll_interval_seconds)

    def next_wait(self, polls: int, job: JobItem, now: datetime) -> int:
        """Exponential backoff from the poll interval, capped, and never past the deadline."""
        wait = min(
            self.settings.poll_interval_seconds * 2 ** max(polls - 1, 0),
            self.settings.poll_max_interval_seconds,
        )
        if job.deadline_at:
            wait = min(wait, max(0, math.ceil((job.deadline_at - now).total_seconds())))
        return int(wait)

    def _again(self, job: JobItem, now: datetime) -> CheckOutcome:
        polls = job.polls + 1
        self.store.update(job.job_id, polls=polls)
        status = JobStatus.PROCESSING if job.status is JobStatus.PROCESSING else job.status
        return CheckOutcome(job.job_id, status.public, self.next_wait(polls, job, now))

    def _time_out(self, job: JobItem, now: datetime) -> CheckOutcome:
        error = JobError(
            type="timeout", message=f"the job did not finish within {self.settings.job_deadline_seconds} s"
        )
        return self._finish(job, JobStatus.TIMEOUT, error, now)

    def _finish(
        self, job: JobItem, to: JobStatus, error: JobError, now: datetime | None = None
    ) -> CheckOutcome:
        updated = self.store.transition(job.job_id, to, error=error, finished_at=now or self.clock())
        final = updated or _load(self.store, job.job_id)
        return CheckOutcome(job.job_id, final.status.value, 0)


def _inference_ms(result: Any) -> int | None:
    timings = getattr(result, "timings", None)
    value = getattr(timings, "inference", None) if timings is not None else None
    if value is None and isinstance(timings, dict):
        value = timings.get("inference")
    return int(value) if value is not None else None


# --------------------------------------------------------------------------- store outputs
@dataclass
class OutputService:
    """Copy the upstream outputs into our bucket, checking each is the image we asked for."""

    store: JobStore
    outputs: OutputStore
    sources: OutputSource
    settings: Settings
    clock: Clock = utcnow

    def store_outputs(self, job_id: str) -> str:
        job = _load(self.store, job_id)
        if job.status.terminal:
            return job.status.value
        request = GenerationRequest.model_validate(job.request)
        stored: list[OutputItem] = []
        try:
            if not job.upstream_outputs:
                raise OutputUnavailableError("the upstream reported completion but returned no outputs")
            for index, source in enumerate(job.upstream_outputs):
                nsfw = job.nsfw[index] if index < len(job.nsfw) else False
                stored.append(self._copy(job, request, index, source, nsfw))
        except OutputUnavailableError as exc:
            error = JobError(type="output_unavailable", message=exc.message)
            updated = self.store.transition(job_id, JobStatus.FAILED, error=error, finished_at=self.clock())
            return (updated or _load(self.store, job_id)).status.value
        updated = self.store.transition(job_id, JobStatus.COMPLETED, outputs=stored, finished_at=self.clock())
        return (updated or _load(self.store, job_id)).status.value

    def _copy(
        self, job: JobItem, request: GenerationRequest, index: int, source: str, nsfw: bool
    ) -> OutputItem:
        label = f"output {index + 1} of {len(job.upstream_outputs)}"
        if source.startswith(("https://", "http://")):
            with self.sources.open(source) as chunks:
                return self._check_and_put(job, request, index, chunks, label, nsfw)
        return self._check_and_put(job, request, index, iter([_decode_base64(source, label)]), label, nsfw)

    def _check_and_put(
        self,
        job: JobItem,
        request: GenerationRequest,
        index: int,
        chunks: Iterator[bytes],
        label: str,
        nsfw: bool,
    ) -> OutputItem:
        cap = self.settings.max_output_bytes
        head = b""
        for chunk in chunks:  # read just enough to recognise the image, then stream the rest
            head += chunk
            if len(head) >= images.HEAD_BYTES:
                break
        try:
            info = images.sniff(head)
        except images.NotAnImageError as exc:
            raise OutputUnavailableError(f"{label} is not a JPEG, PNG or WebP image") from exc
        if info.format != request.output_format:
            raise OutputUnavailableError(
                f"{label} is {info.format}, but {request.output_format} was requested"
            )
        if not images.size_matches(info, request.width, request.height):
            raise OutputUnavailableError(
                f"{label} is {info.width}x{info.height}, but {request.width}x{request.height} was requested"
            )

        def capped() -> Iterator[bytes]:
            total = len(head)
            yield head
            for chunk in chunks:
                total += len(chunk)
                if total > cap:
                    raise OutputUnavailableError(f"{label} is larger than the {cap} byte limit")
                yield chunk

        key = output_key(job.job_id, index, info.format)
        size = self.outputs.put_stream(key, capped(), info.content_type)
        return OutputItem(
            key=key,
            content_type=info.content_type,
            size=size,
            width=info.width,
            height=info.height,
            nsfw=nsfw,
        )


def _decode_base64(value: str, label: str) -> bytes:
    data = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OutputUnavailableError(f"{label} is neither a URL nor valid base64") from exc


# --------------------------------------------------------------------------- fail
@dataclass
class FailService:
    store: JobStore
    clock: Clock = utcnow

    def mark_failed(self, job_id: str, error_type: str, message: str) -> str:
        job = _load(self.store, job_id)
        if job.status.terminal:
            return job.status.value
        error = JobError(type=error_type, message=message)
        updated = self.store.transition(job_id, JobStatus.FAILED, error=error, finished_at=self.clock())
        return (updated or _load(self.store, job_id)).status.value


# --------------------------------------------------------------------------- present
@dataclass
class PredictionPresenter:
    """Turns a job into the WaveSpeed prediction object callers see."""

    outputs: OutputStore
    settings: Settings

    def present(self, job: JobItem, *, allow_base64: bool = True) -> Prediction:
        wants_base64 = allow_base64 and bool(job.request.get("enable_base64_output"))
        if wants_base64:
            urls = [base64.b64encode(self.outputs.read(o.key)).decode() for o in job.outputs]
        else:
            urls = [
                self.outputs.presigned_get(o.key, self.settings.output_url_ttl_seconds) for o in job.outputs
            ]
        inference = job.inference_ms or 0
        error = job.error.message if job.error else ""
        return Prediction(
            id=job.job_id,
            outputs=urls,
            urls=PredictionUrls(get=job.result_url),
            has_nsfw_contents=[o.nsfw for o in job.outputs],
            status=job.status.public,
            created_at=job.created_at,
            error=error,
            executionTime=inference,
            timings=Timings(inference=inference),
        )


# --------------------------------------------------------------------------- notify
@dataclass(frozen=True)
class NotifyOutcome:
    job_id: str
    attempt: int  # webhook attempts so far (stored in the job; reported for the execution history)
    webhook: str  # none | delivered | retry | gave_up
    wait_seconds: int


@dataclass
class NotifyService:
    """SNS for every terminal job; a signed webhook (retried by the workflow) when asked for."""

    store: JobStore
    slots: SlotPool
    notifier: Notifier
    sender: WebhookSender
    secrets: WebhookSecrets
    presenter: PredictionPresenter
    settings: Settings
    check_url: UrlCheck
    clock: Clock = utcnow

    def notify(self, job_id: str) -> NotifyOutcome:
        job = _load(self.store, job_id)
        if not job.status.terminal:
            raise JobStateError(f"job {job_id} is {job.status.value}, not finished")
        self.slots.release(job_id)  # idempotent; frees the upstream slot for queued jobs
        if not job.sns_published:
            self.notifier.publish(
                self._message(job), {"status": job.status.value, "owner": job.owner, "source": job.source}
            )
            job = self.store.update(job_id, sns_published=True)
        hook = job.webhook
        if hook is None:
            return NotifyOutcome(job_id, 0, "none", 0)
        if hook.state in ("delivered", "gave_up"):
            return NotifyOutcome(job_id, hook.attempts, hook.state, 0)
        return self._deliver(job, hook)

    def _message(self, job: JobItem) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "status": job.status.value,
            "owner": job.owner,
            "source": job.source,
            "outputs": [o.key for o in job.outputs],
            "error": job.error.model_dump() if job.error else None,
            "created_at": job.created_at.isoformat(),
        }

    def _deliver(self, job: JobItem, hook: WebhookState) -> NotifyOutcome:
        now = self.clock()
        first = hook.first_attempt_at or now
        payload = self.presenter.present(job, allow_base64=False).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        status: int | None = None
        try:
            self.check_url(hook.url)  # again at delivery: DNS may have changed since submit
            status = self.sender.deliver(
                hook.url, payload, self.secrets.signing_secrets(job.owner), f"msg_{job.job_id}"
            )
            problem = None if 200 <= status < 300 else f"receiver answered HTTP {status}"
        except FluxRelayError as exc:
            problem = exc.message
        attempts = hook.attempts + 1
        if problem is None:
            self.store.update(
                job.job_id,
                webhook=hook.model_copy(
                    update={
                        "state": "delivered",
                        "attempts": attempts,
                        "first_attempt_at": first,
                        "last_status": status,
                        "last_error": None,
                        "delivered_at": now,
                    }
                ),
            )
            return NotifyOutcome(job.job_id, attempts, "delivered", 0)
        elapsed = (now - first).total_seconds()
        remaining = self.settings.webhook_retry_span_seconds - elapsed
        state = "retrying" if remaining > 0 else "gave_up"
        self.store.update(
            job.job_id,
            webhook=hook.model_copy(
                update={
                    "state": state,
                    "attempts": attempts,
                    "first_attempt_at": first,
                    "last_status": status,
                    "last_error": problem,
                }
            ),
        )
        logger.info("webhook delivery failed", extra={"attempt": attempts, "reason": problem, "state": state})
        if state == "gave_up":
            return NotifyOutcome(job.job_id, attempts, "gave_up", 0)
        wait = min(self.settings.webhook_retry_base_seconds * 2 ** (attempts - 1), 3600, math.ceil(remaining))
        return NotifyOutcome(job.job_id, attempts, "retry", int(wait))


# --------------------------------------------------------------------------- queries
def _is_finished_or_gone(store: JobStore, job_id: str) -> bool:
    job = store.get(job_id)
    return job is None or job.status.terminal


def _load(store: JobStore, job_id: str) -> JobItem:
    job = store.get(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job


def get_owned(store: JobStore, owner: str, job_id: str) -> JobItem:
    """The job if `owner` owns it; otherwise the same 404 as for an unknown id."""
    job = store.get(job_id) if _looks_like_id(job_id) else None
    if job is None or job.owner != owner:
        raise NotFoundError("prediction not found")
    return job


def _looks_like_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
