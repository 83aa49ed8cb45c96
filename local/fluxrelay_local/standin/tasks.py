"""The stand-in's tasks: submit validation, and a board whose task states are computed lazily.

A task's status follows from its timestamps on the stand-in's clock (no worker threads):
`created` until it may start (its queue time, or while a concurrency limit is full), then
`processing` for `duration` seconds, then `completed`, or `failed` when it carries an error.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import re
from dataclasses import dataclass
from typing import Any

from fluxrelay.models.wire import MODEL_ID
from fluxrelay_local.standin.images import FORMATS, image_size, render_image
from fluxrelay_local.standin.wire import ApiError

FAIL_MARKER = "[fail]"
HANG_MARKER = "[hang]"
NSFW_MARKER = "[nsfw]"
MAX_SEED = 2_147_483_647
SIZE_RE = re.compile(r"^(\d{1,5})\*(\d{1,5})$")
LORA_PATH_RE = re.compile(r"^[\w.-]+/[\w.-]+$")
SUBMIT_FIELDS = (
    "prompt",
    "image",
    "mask_image",
    "strength",
    "loras",
    "size",
    "num_images",
    "seed",
    "output_format",
    "enable_base64_output",
    "enable_sync_mode",
    "enable_safety_checker",
)
TERMINAL = frozenset({"completed", "failed"})
# Task fields that are moments on the stand-in's clock (converted to wall-clock when exported).
_MOMENTS = ("submitted_at", "ready_at", "started_at")


def validate_submit(body: dict[str, Any]) -> dict[str, Any]:
    """The task's input from a submit body: defaults filled in, unknown keys dropped, a random
    seed drawn for -1. Raises ApiError(400) naming the first bad field."""

    def number(name: str, default: float, low: float, high: float) -> float:
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ApiError(400, f"{name} must be a number between {low:g} and {high:g}")
        return value

    def integer(name: str, default: int, low: int, high: int) -> int:
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ApiError(400, f"{name} must be an integer between {low} and {high}")
        return value

    def flag(name: str, default: bool) -> bool:
        value = body.get(name, default)
        if not isinstance(value, bool):
            raise ApiError(400, f"{name} must be a boolean")
        return value

    def text(name: str) -> str:
        value = body.get(name, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ApiError(400, f"{name} must be a string")
        return value

    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "prompt is required and must be a non-empty string")
    size = body.get("size", "1024*1024")
    match = SIZE_RE.match(size) if isinstance(size, str) else None
    if not match or not all(256 <= int(side) <= 1536 for side in match.groups()):
        raise ApiError(400, "size must be 'W*H' with each side between 256 and 1536")
    loras = body.get("loras", [])
    if loras is None:
        loras = []
    if not isinstance(loras, list) or len(loras) > 3:
        raise ApiError(400, "loras must be a list of at most 3 items")
    for item in loras:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise ApiError(400, "each lora needs a non-empty string path")
        scale = item.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.0 <= scale <= 4.0:
            raise ApiError(400, "each lora needs a scale between 0 and 4")
    output_format = body.get("output_format", "jpeg")
    if output_format not in FORMATS:
        raise ApiError(400, "output_format must be one of jpeg, png, webp")
    seed = integer("seed", -1, -1, MAX_SEED)
    return {
        "prompt": prompt,
        "image": text("image"),
        "mask_image": text("mask_image"),
        "strength": number("strength", 0.8, 0.0, 1.0),
        "loras": [{"path": item["path"], "scale": item["scale"]} for item in loras],
        "size": size,
        "num_images": integer("num_images", 1, 1, 4),
        "seed": random.randrange(MAX_SEED + 1) if seed == -1 else seed,
        "output_format": output_format,
        "enable_base64_output": flag("enable_base64_output", False),
        "enable_sync_mode": flag("enable_sync_mode", False),
        "enable_safety_checker": flag("enable_safety_checker", True),
    }


def bad_lora(params: dict[str, Any]) -> str | None:
    """The first LoRA path that is neither `owner/repo` nor an https URL: upstream accepts the
    submit and fails the task later, when it cannot load it."""
    return next(
        (
            lora["path"]
            for lora in params["loras"]
            if not (LORA_PATH_RE.match(lora["path"]) or lora["path"].startswith("https://"))
        ),
        None,
    )


@dataclass
class Task:
    id: str
    params: dict[str, Any]
    webhook: str | None
    base_url: str
    created_at: str  # RFC 3339, as upstream reports it
    submitted_at: float  # clock time of the submit
    ready_at: float  # clock time it may leave `created`
    duration: float  # processing seconds
    error: str | None  # set: the task ends `failed`
    never_finish: bool
    started_at: float | None = None
    webhook_scheduled: bool = False
    outputs: list[str] | None = None

    @property
    def ends_at(self) -> float | None:
        if self.started_at is None or self.never_finish:
            return None
        return self.started_at + self.duration


@dataclass(frozen=True)
class TaskInfo:
    """What the stand-in knows of one task, for tests: its status and its moments on the
    stand-in's clock (`started_at`/`ends_at` are None until it starts, `ends_at` stays None for
    a task that never finishes)."""

    id: str
    status: str
    submitted_at: float
    started_at: float | None
    ends_at: float | None
    webhook: str | None


class TaskBoard:
    """Every task the stand-in accepted, with its lazily computed state.

    Not thread-safe on its own: the server holds its lock around every call.
    """

    def __init__(self, *, size_multiple: int = 1, base64_data_uri: bool = False) -> None:
        self.size_multiple = max(1, size_multiple)
        self.base64_data_uri = base64_data_uri
        self._tasks: dict[str, Task] = {}

    def add(self, task: Task) -> None:
        self._tasks[task.id] = task

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def __iter__(self) -> Any:
        return iter(self._tasks.values())

    def clear(self) -> None:
        self._tasks.clear()

    # -- state --
    def advance(self, now: float, limit: int | None) -> None:
        """Give queued tasks their start time, FIFO, honouring a concurrency `limit`."""
        for task in self._tasks.values():
            if task.started_at is not None:
                continue
            if task.ready_at > now:
                if limit is None:
                    continue
                break
            if limit is None:
                task.started_at = task.ready_at
                continue
            start = self._first_free_slot(task.ready_at, now, limit)
            if start is None:
                break  # a FIFO queue: nobody behind it starts either
            task.started_at = start

    def _first_free_slot(self, ready: float, now: float, limit: int) -> float | None:
        started = [t for t in self._tasks.values() if t.started_at is not None]
        ends = {t.ends_at for t in started if t.ends_at is not None and ready < t.ends_at <= now}
        for moment in sorted({ready} | ends):
            busy = sum(
                1
                for t in started
                if t.started_at is not None
                and t.started_at <= moment
                and (t.ends_at is None or moment < t.ends_at)
            )
            if busy < limit:
                return moment
        return None

    @staticmethod
    def status(task: Task, now: float) -> str:
        if task.started_at is None or task.started_at > now:
            return "created"
        ends_at = task.ends_at
        if ends_at is None or now < ends_at:
            return "processing"
        return "failed" if task.error else "completed"

    def finish(self, task: Task, now: float) -> None:
        if self.status(task, now) in TERMINAL:
            return
        task.never_finish = False
        if task.started_at is None or task.started_at > now:
            task.started_at = now
        task.duration = now - task.started_at

    def info(self, task: Task, now: float) -> TaskInfo:
        status = self.status(task, now)
        return TaskInfo(task.id, status, task.submitted_at, task.started_at, task.ends_at, task.webhook)

    # -- what upstream answers --
    def prediction(self, task: Task, now: float) -> dict[str, Any]:
        status = self.status(task, now)
        outputs = self._outputs(task) if status == "completed" else []
        elapsed_ms = int(task.duration * 1000) if status in TERMINAL else 0
        return {
            "id": task.id,
            "model": MODEL_ID,
            "outputs": outputs,
            "urls": {"get": f"{task.base_url}/api/v3/predictions/{task.id}/result"},
            "has_nsfw_contents": [NSFW_MARKER in task.params["prompt"]] * len(outputs),
            "status": status,
            "created_at": task.created_at,
            "error": (task.error or "") if status == "failed" else "",
            "executionTime": elapsed_ms,
            "timings": {"inference": elapsed_ms},
        }

    def image_size(self, params: dict[str, Any]) -> tuple[int, int]:
        return image_size(params["size"], self.size_multiple)

    def _outputs(self, task: Task) -> list[str]:
        if task.outputs is None:
            params = task.params
            fmt = params["output_format"]
            if params["enable_base64_output"]:
                width, height = self.image_size(params)
                prefix = f"data:{FORMATS[fmt][1]};base64," if self.base64_data_uri else ""
                task.outputs = [
                    prefix
                    + base64.b64encode(
                        render_image(params["prompt"], params["seed"], n, width, height, fmt)
                    ).decode()
                    for n in range(params["num_images"])
                ]
            else:
                task.outputs = [
                    f"{task.base_url}/output/{task.id}/{n}.{fmt}" for n in range(params["num_images"])
                ]
        return task.outputs

    # -- persistence --
    def export(self, now: float, wall_now: float) -> list[dict[str, Any]]:
        """Every task as JSON-ready data, its moments as wall-clock times: upstream goes on
        working while we are away, so a task restored later has moved on by as long."""
        exported = []
        for task in self._tasks.values():
            record = dataclasses.asdict(task)
            record["outputs"] = None  # derived from params and base_url again when asked
            for name in _MOMENTS:
                if record[name] is not None:
                    record[name] = wall_now + (record[name] - now)
            exported.append(record)
        return exported

    def load(self, records: list[dict[str, Any]], now: float, wall_now: float) -> None:
        """Add exported tasks, their moments put back on this clock."""
        for record in records:
            values = dict(record)
            for name in _MOMENTS:
                if values.get(name) is not None:
                    values[name] = now + (values[name] - wall_now)
            self.add(Task(**values))
