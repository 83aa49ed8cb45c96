"""Following a job to its end: a live status line with the elapsed time, one line per transition.

On a terminal the current status is a Rich spinner line that updates in place; every status
change is also printed as a line of its own, which is all a pipe or a log file sees.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from fluxrelay_cli.client import CANCEL_PATH, TERMINAL, FluxRelayClient

POLL_SECONDS = 0.5


def _watch(job_id: str) -> str:
    return f"fluxrelay jobs watch {job_id}"


def _started(prediction: dict[str, Any]) -> float:
    """The job's creation time as a time.time() value (now if the API did not say)."""
    try:
        created = datetime.fromisoformat(str(prediction["created_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return time.time()
    return created.astimezone(UTC).timestamp()


def follow(client: FluxRelayClient, prediction: dict[str, Any], console: Console) -> dict[str, Any]:
    """Poll the job until it is terminal and return its final prediction. Ctrl-C propagates."""
    job_id, started = prediction["id"], _started(prediction)
    if prediction.get("status") in TERMINAL:
        console.print(f"{job_id}  {prediction['status']}")
        return prediction
    last = ""
    with console.status("", spinner="dots") as status:
        while True:
            elapsed = max(0.0, time.time() - started)
            state = str(prediction.get("status", "?"))
            if state != last:
                console.print(f"{job_id}  {state:<10} {elapsed:6.1f}s")
                last = state
            if state in TERMINAL:
                return prediction
            status.update(f"{job_id}  {state}  {elapsed:.1f}s")
            time.sleep(POLL_SECONDS)
            prediction = client.prediction(job_id)


def offer_cancel(client: FluxRelayClient, job_id: str, console: Console) -> None:
    """After Ctrl-C: cancel the job, or leave it running (the default, and on a second Ctrl-C)."""
    console.print()
    if not client.can(CANCEL_PATH):
        console.print(f"left running (this stack cannot cancel jobs); follow it with: {_watch(job_id)}")
        return
    try:
        answer = console.input(f"Cancel job {job_id}? It keeps running otherwise. [y/N] ")
    except (KeyboardInterrupt, EOFError):
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        console.print(f"left running; follow it with: {_watch(job_id)}")
        return
    prediction = client.cancel(job_id)
    console.print(f"{job_id}  {prediction.get('status')}")
