"""Upload expiry: after the upload window, an img2img job still waiting for its upload times out.

Its own use case, apart from `uploads.py`: the expiry task reads a job and heads one object, so it
never loads the upload parsing, the image decoder or the submit path (upstream client, httpx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fluxrelay.domain.jobs import JobError, JobStatus
from fluxrelay.models.tasks import ExpireUploadOutput
from fluxrelay.observability import logger

if TYPE_CHECKING:
    from fluxrelay.domain.lifecycle import JobLifecycle
    from fluxrelay.domain.ports import JobStore, UploadStore
    from fluxrelay.settings import Settings


@dataclass
class UploadExpiryService:
    """Run by the upload-expiry state machine, one execution per img2img-by-upload job."""

    lifecycle: JobLifecycle
    jobs: JobStore
    uploads: UploadStore
    settings: Settings

    def expire(self, job_id: str) -> ExpireUploadOutput:
        """The upload-expiry timer fired: a job still waiting for its upload ends as `timeout`."""
        job = self.jobs.get(job_id)
        if job is None:
            return ExpireUploadOutput(job_id=job_id, status="missing", expired=False)
        if job.status is not JobStatus.WAITING_UPLOAD:
            return ExpireUploadOutput(job_id=job_id, status=job.status.value, expired=False)
        if job.input_key and self.uploads.head(job.input_key) is not None:
            # It did arrive; its S3 event is still queued (a burst) and will start the job.
            logger.info("upload arrived, its event is still queued", extra={"job_id": job_id})
            return ExpireUploadOutput(job_id=job_id, status=job.status.value, expired=False)
        window = self.settings.upload_window_seconds
        error = JobError(
            type="upload_timeout", message=f"upload never arrived: nothing was uploaded within {window} s"
        )
        ended = self.lifecycle.move(
            job_id, JobStatus.TIMEOUT, error=error, finished_at=self.lifecycle.clock()
        )
        if ended is None:  # the upload won the race
            current = self.jobs.get(job_id) or job
            return ExpireUploadOutput(job_id=job_id, status=current.status.value, expired=False)
        self.lifecycle.notify_finished(job_id)
        return ExpireUploadOutput(job_id=job_id, status=ended.status.value, expired=True)
