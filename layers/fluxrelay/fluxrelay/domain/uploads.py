"""Uploads and img2img from S3: upload tickets, jobs waiting for their input, operator drops.

Pure domain code (no boto3): the bucket is the `UploadStore` port; jobs are created, moved and
their workflows started by the `JobLifecycle`.

Two ways an image becomes an img2img job, with the guarantees of an HTTP submit:
- **Upload flow**: `img2img_ticket` validates the parameters at once, records the job in
  `waiting_upload` and hands out a presigned PUT to `img2img/<owner>/<job id>.<ext>`; the S3
  event of that PUT starts the job (`ingest`). A timer (the upload-expiry state machine) runs
  `UploadExpiryService.expire` after the upload window: a job still waiting then ends as `timeout`.
- **Operator drops**: `img2img/drops/<name>.<ext>` next to a JSON sidecar `<name>.json` (the
  submit body minus `image`). The job id is derived from bucket, key and object version, so a
  redelivered S3 event maps to the same job.

S3 delivers events at least once. One object version gives one upstream submission because the
only way to submission is the conditional `waiting_upload → created` transition. A bad input
(not an image, too large, bad sidecar) fails the job before anything is paid for; failed and
expired jobs are notified by starting the generation workflow on the finished job, whose
`CheckResult` sees the terminal status and goes straight to `Notify` (SNS + webhook retries).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

from fluxrelay.domain import images
from fluxrelay.domain.errors import ConflictError, InvalidRequestError, UpstreamError
from fluxrelay.domain.jobs import JobError, JobItem, JobStatus, new_job_id
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import JobStore, UploadStore
from fluxrelay.domain.submit import SubmitService
from fluxrelay.models.s3events import S3Object
from fluxrelay.models.uploads import (
    ALLOWED_UPLOAD_CONTENT_TYPES,
    BinaryUpload,
    Filename,
    Img2ImgParameters,
    Img2ImgUploadRequest,
    Img2ImgUploadTicket,
    UploadSpec,
    UploadTicket,
    UploadTicketRequest,
)
from fluxrelay.models.wire import (
    GenerationRequest,
    PredictionUrls,
    describe_validation_error,
    parse_json_object,
)
from fluxrelay.observability import logger
from fluxrelay.settings import Settings

IMG2IMG_PREFIX = "img2img/"
DROPS_PREFIX = "img2img/drops/"
SIDECAR_SUFFIX = ".json"
MAX_SIDECAR_BYTES = 64 * 1024
# After the PUT URL has expired, an upload that started just in time may still be arriving.
EXPIRY_GRACE_SECONDS = 300
_EXTENSIONS = {ctype: images.EXTENSIONS[fmt] for fmt, ctype in images.CONTENT_TYPES.items()}
_UPLOAD_KEY = re.compile(r"img2img/(?P<owner>[^/]+)/(?P<job_id>[0-9a-f]{32})\.(?P<ext>[a-z]+)")
_FILENAME = TypeAdapter(Filename)


def drop_job_id(bucket: str, key: str, version: str) -> str:
    """A job id (32 hex, like every id) fixed by the object version: duplicates map to one job."""
    return hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()[:32]


def sidecar_key(key: str) -> str:
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return stem + SIDECAR_SUFFIX


def _random_token() -> str:
    return secrets.token_hex(8)


# --------------------------------------------------------------------------- service
@dataclass
class UploadService:
    """Upload tickets, img2img jobs waiting for their upload, and the S3 events that start them."""

    lifecycle: JobLifecycle
    jobs: JobStore
    submitter: SubmitService
    uploads: UploadStore
    settings: Settings
    token: Callable[[], str] = field(default=_random_token)

    # --- plain uploads ------------------------------------------------------------------
    def ticket(self, owner: str, request: UploadTicketRequest) -> UploadTicket:
        self._check_size(request.size, self.settings.max_upload_bytes)
        key = f"uploads/{owner}/{self.token()}/{request.filename}"
        url, headers = self.uploads.presigned_put(
            key, request.content_type, request.size, self.settings.upload_url_ttl_seconds
        )
        return UploadTicket(
            download_url=self.uploads.presigned_get(key, self.settings.upload_download_ttl_seconds),
            filename=request.filename,
            size=request.size,
            upload=UploadSpec(url=url, headers=headers),
        )

    def binary(self, owner: str, filename: str, data: bytes) -> BinaryUpload:
        self._check_size(len(data), self.settings.max_binary_upload_bytes, what="file")
        info = images.sniff(data, full=True)  # NotAnImageError is a 400
        name = _clean_filename(filename, info.format)
        key = f"uploads/{owner}/{self.token()}/{name}"
        self.uploads.put(key, data, info.content_type)
        return BinaryUpload(
            download_url=self.uploads.presigned_get(key, self.settings.upload_download_ttl_seconds),
            filename=name,
            size=len(data),
        )

    # --- img2img by upload --------------------------------------------------------------
    def img2img_ticket(
        self,
        owner: str,
        body: Img2ImgUploadRequest,
        *,
        webhook_url: str | None = None,
        result_base_url: str = "",
    ) -> Img2ImgUploadTicket:
        """Validate, record the job as `waiting_upload`, start its expiry timer, hand out the PUT."""
        if f"{IMG2IMG_PREFIX}{owner}/" == DROPS_PREFIX:
            raise InvalidRequestError("this owner name is reserved for operator drops")
        if body.content_length is not None:
            self._check_size(body.content_length, self.settings.max_upload_bytes, what="content_length")
        request = body.to_generation_request(self.settings.validation_context())
        job_id = new_job_id()
        key = f"{IMG2IMG_PREFIX}{owner}/{job_id}.{_EXTENSIONS[body.content_type]}"
        window = self.settings.upload_window_seconds
        job = self.submitter.new_job(
            owner,
            request,
            source="api",
            webhook_url=webhook_url,
            result_base_url=result_base_url,
            status=JobStatus.WAITING_UPLOAD,
            job_id=job_id,
            input_key=key,
        )
        # Until its upload arrives, the job's deadline is the upload window.
        job = self.jobs.update(job_id, deadline_at=job.created_at + timedelta(seconds=window))
        self._start_expiry_timer(job_id, window + EXPIRY_GRACE_SECONDS)
        # The PUT URL lives exactly as long as the window: no upload can start after it.
        url, headers = self.uploads.presigned_put(key, body.content_type, body.content_length, window)
        logger.info("img2img upload ticket issued", extra={"job_id": job_id})
        return Img2ImgUploadTicket(
            id=job_id, urls=PredictionUrls(get=job.result_url), upload=UploadSpec(url=url, headers=headers)
        )

    def _start_expiry_timer(self, job_id: str, wait_seconds: int) -> None:
        try:
            started = self.lifecycle.start_expiry(job_id, wait_seconds)
        except Exception:
            # Nobody has the PUT URL yet: end the job instead of leaving it waiting forever.
            error = JobError(type="internal", message="the upload could not be prepared", retryable=True)
            self.lifecycle.fail(job_id, error)
            self.lifecycle.notified(job_id)  # the caller learns it from this call's error answer
            raise
        if not started:
            logger.warning("no upload-expiry state machine configured: this job never expires")

    # --- S3 events ------------------------------------------------------------------------
    def ingest(self, obj: S3Object) -> str:
        """Handle one created object; returns what happened (started | duplicate | failed | ignored)."""
        key = obj.key
        if not key.startswith(IMG2IMG_PREFIX):
            return "ignored"
        if key.startswith(DROPS_PREFIX):
            if key.endswith(SIDECAR_SUFFIX):
                return "ignored"  # sidecars are read with their image, never on their own
            return self._ingest_drop(obj)
        match = _UPLOAD_KEY.fullmatch(key)
        job = self.jobs.get(match["job_id"]) if match else None
        if job is None or job.input_key != key or job.owner != match["owner"]:  # type: ignore[index]
            logger.info("object under img2img/ belongs to no waiting job", extra={"key": key})
            return "ignored"
        return self._ingest_job(job, obj)

    def _ingest_drop(self, obj: S3Object) -> str:
        job_id = drop_job_id(obj.bucket, obj.key, obj.version_id or obj.etag)
        existing = self.jobs.get(job_id)
        if existing is not None:
            return self._ingest_job(existing, obj)
        try:
            request = self._read_sidecar(sidecar_key(obj.key))
            job = self.submitter.new_job(
                self.settings.system_owner,
                request,
                source="s3",
                result_base_url=self.settings.public_base_url,
                status=JobStatus.WAITING_UPLOAD,
                job_id=job_id,
                input_key=obj.key,
            )
        except ConflictError:
            # A concurrent delivery of the same event created it first; the transition decides.
            return self._ingest_job(self.jobs.get(job_id), obj)  # type: ignore[arg-type]
        except InvalidRequestError as exc:
            return self._record_failed_drop(job_id, obj.key, exc.message)
        logger.info("operator drop recorded", extra={"job_id": job_id, "key": obj.key})
        return self._ingest_job(job, obj)

    def _read_sidecar(self, key: str) -> GenerationRequest:
        raw = self.uploads.read(key, MAX_SIDECAR_BYTES)
        if raw is None:
            raise InvalidRequestError(
                f"no sidecar {key}: write the JSON parameters next to the image before the image itself"
            )
        try:
            data = parse_json_object(raw)  # the submit body's own rules
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"sidecar {key}: {exc.message}") from None
        try:
            params = Img2ImgParameters.model_validate(data, context=self.settings.validation_context())
            return params.to_generation_request(self.settings.validation_context())
        except ValidationError as exc:
            raise InvalidRequestError(f"sidecar {key}: {describe_validation_error(exc)}") from None

    def _record_failed_drop(self, job_id: str, key: str, message: str) -> str:
        try:
            self.lifecycle.create(
                self.settings.system_owner,
                None,
                source="s3",
                status=JobStatus.FAILED,
                job_id=job_id,
                input_key=key,
                error=JobError(type="invalid_input", message=message),
            )
        except ConflictError:
            return "duplicate"
        logger.info("operator drop rejected", extra={"job_id": job_id, "reason": message})
        self.lifecycle.notify_finished(job_id)
        return "failed"

    def _ingest_job(self, job: JobItem, obj: S3Object) -> str:
        if job.status is JobStatus.CREATED and job.upstream_id and not job.execution_arn:
            return self._resume(job)
        if job.status is not JobStatus.WAITING_UPLOAD:
            logger.info("duplicate S3 event: the job is past waiting_upload", extra={"job_id": job.job_id})
            return "duplicate"
        try:
            request = self._check_input(job, obj.key)
        except InvalidRequestError as exc:
            return self._fail(job.job_id, exc.message)
        # The at-least-once dedupe: only one delivery can move the job out of waiting_upload.
        # The job's own deadline starts now; until now it was the upload window.
        deadline = self.lifecycle.deadline(self.lifecycle.clock(), job.cancel_after_at)
        created = self.lifecycle.move(
            job.job_id, JobStatus.CREATED, request=request.model_dump(mode="json"), deadline_at=deadline
        )
        if created is None:
            return "duplicate"
        try:
            self.submitter.start(created, request)
        except UpstreamError:
            # start() recorded the job as failed; tell the caller like any other failure.
            self.lifecycle.notify_finished(job.job_id)
            return "failed"
        return "started"

    def _resume(self, job: JobItem) -> str:
        # A previous delivery submitted upstream but died before starting the workflow.
        self.lifecycle.start_generation(job, self.settings.first_poll_seconds(job.num_images))
        return "started"

    def _check_input(self, job: JobItem, key: str) -> GenerationRequest:
        """Everything that can be known about the file before paying for it."""
        info = self.uploads.head(key)
        if info is None:
            raise InvalidRequestError("the uploaded file is gone")
        if info.size == 0:
            raise InvalidRequestError("the uploaded file is empty")
        if info.size > self.settings.max_upload_bytes:
            raise InvalidRequestError(
                f"the uploaded file is {info.size} bytes; the limit is {self.settings.max_upload_bytes} bytes"
            )
        try:
            if info.size <= self.settings.full_decode_max_bytes:  # small: decode it completely
                found = images.sniff(
                    self.uploads.read(key, self.settings.full_decode_max_bytes) or b"", full=True
                )
            else:  # large: magic bytes and header (format, dimensions) only
                found = images.sniff(self.uploads.read_head(key, images.HEAD_BYTES))
        except images.TooManyPixelsError:
            raise InvalidRequestError("the uploaded image has too many pixels") from None
        except images.NotAnImageError as exc:
            raise InvalidRequestError(f"the uploaded file is not usable: {exc.message}") from None
        if info.content_type in ALLOWED_UPLOAD_CONTENT_TYPES and info.content_type != found.content_type:
            raise InvalidRequestError(
                f"the uploaded file is a {found.format.upper()} image but was sent as {info.content_type}"
            )
        # The upstream fetches the input itself: a presigned GET that outlives the whole job.
        url = self.uploads.presigned_get(key, self.settings.job_deadline_seconds + EXPIRY_GRACE_SECONDS)
        try:
            return GenerationRequest.model_validate(
                {**job.request, "image": url}, context=self.settings.validation_context()
            )
        except ValidationError as exc:
            raise InvalidRequestError(
                f"the stored parameters are invalid: {describe_validation_error(exc)}"
            ) from None

    def _fail(self, job_id: str, message: str) -> str:
        error = JobError(type="invalid_input", message=message)
        if (
            self.lifecycle.move(job_id, JobStatus.FAILED, error=error, finished_at=self.lifecycle.clock())
            is None
        ):
            return "duplicate"
        logger.info("img2img input rejected", extra={"job_id": job_id, "reason": message})
        self.lifecycle.notify_finished(job_id)
        return "failed"

    @staticmethod
    def _check_size(size: int, limit: int, what: str = "size") -> None:
        if size < 1 or size > limit:
            raise InvalidRequestError(f"{what} must be a whole number of bytes from 1 to {limit}")


def _clean_filename(filename: str, fmt: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return _FILENAME.validate_python(name)
    except ValidationError:
        return f"upload.{images.EXTENSIONS[fmt]}"
