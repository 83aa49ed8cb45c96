"""Cancel: the caller ends their unfinished job; the workflow notices at once and notifies once.

WaveSpeed has no cancel call. A job still queued here (never sent) ends unbilled; a job already
running upstream ends on our side only, and the upstream may still finish and bill it (what
happens to its images is the operator's `CancelledOutputs` setting).
"""

from __future__ import annotations

from dataclasses import dataclass

from fluxrelay.domain.errors import ConflictError
from fluxrelay.domain.jobs import JobItem
from fluxrelay.domain.lifecycle import JobLifecycle


@dataclass
class CancelService:
    lifecycle: JobLifecycle

    def cancel(self, owner: str, job_id: str) -> JobItem:
        """Cancel `owner`'s job; NotFoundError if it is not theirs, ConflictError (409) naming its
        status if it has already ended."""
        cancelled = self.lifecycle.cancel(self.lifecycle.owned(owner, job_id))
        if cancelled is None:
            ended = self.lifecycle.load(job_id)
            raise ConflictError(f"the prediction has already ended: its status is {ended.status.public}")
        if cancelled.execution_arn is None:
            # No generation workflow yet (the job was waiting for its upload): start one, which
            # sees the job has ended and notifies. A workflow started meanwhile makes this a no-op.
            self.lifecycle.notify_finished(job_id)
        elif not self.lifecycle.awaits_late_outputs(cancelled):
            # Its workflow may be parked for up to a poll interval: wake it, so that its check
            # sees the end now and goes to Notify (which sends each end once). A workflow that
            # follows the upstream task for the images the operator keeps is left waiting.
            self.lifecycle.wake(job_id)
        return cancelled
