"""Submit: validate → record → submit once → start the workflow.

The HTTP API and the S3 trigger both submit through here, so both give the same guarantees: the
job is written before anything is sent upstream, the upstream submit is sent once, and every
accepted job ends notified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fluxrelay.domain.dispatch import Dispatcher
from fluxrelay.domain.errors import UpstreamError
from fluxrelay.domain.jobs import JobItem, JobStatus
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.domain.ports import UrlCheck, WebhookSecrets
from fluxrelay.models.wire import GenerationRequest
from fluxrelay.settings import Settings


@dataclass
class SubmitService:
    lifecycle: JobLifecycle
    dispatcher: Dispatcher
    webhook_secrets: WebhookSecrets
    settings: Settings
    check_url: UrlCheck

    def new_job(
        self,
        owner: str,
        request: GenerationRequest,
        *,
        source: Literal["api", "s3"] = "api",
        webhook_url: str | None = None,
        result_base_url: str = "",
        status: JobStatus = JobStatus.CREATED,
        job_id: str | None = None,
        input_key: str | None = None,
        cancel_after_seconds: int | None = None,
    ) -> JobItem:
        """Check the webhook URL and write the job item (nothing is sent upstream yet)."""
        if webhook_url:
            # Refused before paying: a URL we must never post to (SSRF guard). Image and LoRA
            # URLs are fetched by the upstream, not by us; the request model checks their syntax.
            self.check_url(webhook_url)
            # Make sure the owner's signing secret exists before a webhook can ever be due.
            self.webhook_secrets.current(owner)
        return self.lifecycle.create(
            owner,
            request,
            source=source,
            status=status,
            job_id=job_id,
            webhook_url=webhook_url,
            result_base_url=result_base_url,
            input_key=input_key,
            cancel_after_seconds=cancel_after_seconds,
        )

    def submit(
        self,
        owner: str,
        request: GenerationRequest,
        *,
        webhook_url: str | None = None,
        result_base_url: str = "",
        cancel_after_seconds: int | None = None,
    ) -> JobItem:
        """Record the job, then submit it and start its workflow. `cancel_after_seconds` is the
        caller's deadline (header Cancel-After): unfinished by then, the job ends as `timeout`."""
        job = self.new_job(
            owner,
            request,
            webhook_url=webhook_url,
            result_base_url=result_base_url,
            cancel_after_seconds=cancel_after_seconds,
        )
        try:
            return self.start(job, request)
        except UpstreamError:
            # The job was recorded as failed, and the caller learns it from this call's error
            # answer (which names no job): nothing is left to notify.
            self.lifecycle.notified(job.job_id)
            raise

    def start(self, job: JobItem, request: GenerationRequest) -> JobItem:
        """Send a recorded job upstream (once, when an upstream slot is free) and start its
        workflow. Without a free slot the job stays `created` and the workflow submits it later."""
        job = self.dispatcher.dispatch(job, request)
        if job.upstream_id:
            first_wait = self.settings.first_poll_seconds(request.num_images)
        else:
            first_wait = self.settings.poll_interval_seconds
        return self.lifecycle.start_generation(job, first_wait)
