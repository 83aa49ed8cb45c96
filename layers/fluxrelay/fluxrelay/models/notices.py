"""The SNS message published once for every finished job."""

from __future__ import annotations

from pydantic import BaseModel

from fluxrelay.domain.jobs import JobError


class JobNotice(BaseModel):
    job_id: str
    status: str
    owner: str
    source: str
    outputs: list[str]  # object keys in our bucket
    error: JobError | None
    created_at: str  # ISO 8601, as datetime.isoformat() writes it

    def attributes(self) -> dict[str, str]:
        """SNS message attributes, for subscription filter policies."""
        return {"status": self.status, "owner": self.owner, "source": self.source}
