"""The stand-in's webhook sender: WaveSpeed's signed POST of a finished task, with retries."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from fluxrelay.adapters.wavespeed import sign_wavespeed_webhook


class WebhookSender:
    """Sends one task's webhook, retrying with exponential backoff, and reports every attempt
    to `record` (task_id, url, attempt, status or None, error). `stopped` cuts retries short."""

    def __init__(
        self,
        secret: Callable[[], str],
        record: Callable[[dict[str, Any]], None],
        stopped: threading.Event,
        *,
        retries: int,
        backoff_seconds: float,
        wall_clock: Callable[[], float],
    ) -> None:
        self._secret = secret
        self._record = record
        self._stopped = stopped
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self._wall_clock = wall_clock
        self._http: httpx.Client | None = None

    def open(self) -> None:
        self._http = httpx.Client(timeout=httpx.Timeout(5.0), follow_redirects=False)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def deliver(self, task_id: str, url: str, body: bytes) -> None:
        webhook_id = f"msg_{uuid.uuid4().hex}"  # the same id on every retry, as upstream does
        for attempt in range(1 + self.retries):
            if self._stopped.is_set() or self._http is None:
                return
            timestamp = str(int(self._wall_clock()))
            headers = {
                "Content-Type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": sign_wavespeed_webhook(self._secret(), webhook_id, timestamp, body),
            }
            status: int | None = None
            error = ""
            try:
                status = self._http.post(url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self._record(
                {"task_id": task_id, "url": url, "attempt": attempt, "status": status, "error": error}
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt < self.retries:
                self._stopped.wait(self.backoff_seconds * 2**attempt)
