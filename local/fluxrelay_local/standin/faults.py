"""The stand-in's run-time switchable faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Faults:
    """Run-time switchable faults. Counters (`int`) apply to the next N matching requests/tasks.

    Set them from Python (`standin.set_faults(submit_429=2)`, or `standin.faults.submit_429 = 2`)
    or over HTTP (`POST /_standin/faults {"submit_429": 2}`); `clear_faults()` and
    `POST /_standin/reset` clear them.
    """

    submit_429: int = 0  # next N submits answer 429
    submit_429_retry_after: float | None = None  # their Retry-After header (None = no header)
    submit_5xx: int = 0  # next N submits answer 500 without creating a task
    submit_hang: int = 0  # next N submits create the task, then hang before answering
    submit_hang_seconds: float = 5.0
    submit_5xx_after_create: int = 0  # next N submits create the task, then answer 500
    # Submits whose prompt contains this text are refused (as upstream refuses, e.g., an unknown
    # LoRA) with `submit_reject_status` and `submit_reject_message`; no task is created.
    submit_reject_marker: str | None = None
    submit_reject_status: int = 422
    submit_reject_message: str = "Unprocessable: injected rejection"
    result_5xx: int = 0  # next N result GETs answer `result_5xx_status`
    result_5xx_status: int = 500
    result_delay: float = 0.0  # every result GET waits this long before answering
    result_status: str | None = None  # result GETs report this status (e.g. an unknown one)
    fail_next: int = 0  # next N accepted tasks end `failed` with `fail_error`
    fail_error: str = "Inference failed: injected fault"
    never_finish_next: int = 0  # next N accepted tasks stay `processing` forever
    outputs_expired: bool = False  # /output/... answers 404 (deleted after 7 days)
    tasks_expired: bool = False  # result GETs answer 404 for every task
    max_concurrent: int | None = None  # tasks beyond this many processing stay `created`
    webhooks_lost: int = 0  # the webhooks of the next N ending tasks are never sent

    def update(self, **changes: Any) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise KeyError(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name, value in changes.items():
            setattr(self, name, value)

    def take(self, name: str) -> bool:
        """Use up one of the counter `name`: True when it was set (and is now one lower)."""
        count: int = getattr(self, name)
        if count > 0:
            setattr(self, name, count - 1)
            return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
