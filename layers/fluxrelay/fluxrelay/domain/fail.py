"""Fail: record a job as failed after a workflow task failed for good (the Catch path)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fluxrelay.domain.jobs import JobError
from fluxrelay.domain.lifecycle import JobLifecycle
from fluxrelay.models.tasks import CaughtError, JobStatusOutput
from fluxrelay.observability import logger


@dataclass
class FailService:
    lifecycle: JobLifecycle

    def mark_failed(self, job_id: str, caught: CaughtError) -> JobStatusOutput:
        logger.warning("workflow step failed", extra={"error": caught.Error})
        job = self.lifecycle.load(job_id)
        if not job.status.terminal:
            job = self.lifecycle.fail(job_id, JobError(type=caught.Error, message=_message(caught)))
        return JobStatusOutput(job_id=job_id, status=job.status.value)


def _message(error: CaughtError) -> str:
    # A Lambda error's Cause is its JSON error shape; callers get its message, never the trace.
    try:
        cause = json.loads(error.Cause)
    except ValueError:
        cause = None
    if isinstance(cause, dict) and cause.get("errorMessage"):
        return str(cause["errorMessage"])
    return f"the workflow step failed ({error.Error})"
