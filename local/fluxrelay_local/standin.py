"""A faithful local stand-in for WaveSpeed's v3 API (`wavespeed-ai/flux-schnell-lora`).

It speaks the same paths, envelope, statuses and webhook signatures as the real service
(https://wavespeed.ai/docs), so our backend and the official WaveSpeed SDKs can use it unchanged
through their configurable base URL.

    with StandIn(seconds_per_image=0.5) as upstream:      # port 0: the OS picks a free port
        client = WaveSpeedClient(upstream.url, upstream.api_key)
        upstream.faults.submit_429 = 2                    # switch faults at run time
        ...
        upstream.submissions                              # what the "paid" upstream saw

CLI: `python -m fluxrelay_local.standin --port 3001` (Ctrl-C stops it).

Choices where the real service is undocumented, all configurable:
- Task status is computed lazily from timestamps (no worker threads): `created` for
  `queue_seconds` (or while a concurrency limit is full), then `processing` for
  `seconds_per_image * num_images`, then `completed` or `failed`. Only webhooks use threads.
- Images are real JPEG/PNG/WebP files of the requested size (`size_multiple` floors the sides,
  1 = exact), deterministic from (seed, prompt, index), served at `/output/<task id>/<n>.<ext>`
  (n from 0). With `enable_base64_output` the outputs are raw base64 (no `data:` prefix) unless
  `base64_data_uri=True`.
- Prompts containing `[fail]` fail; prompts containing `[hang]` never finish; prompts containing
  `[nsfw]` have every output flagged in `has_nsfw_contents`; a LoRA path that is
  neither `owner/repo` nor an https URL makes the task fail later (as upstream most likely does).
- Sync mode waits at most `sync_timeout_seconds` (default 90), then answers the 5004 shape.
- Control routes (no auth): `GET|POST /_standin/faults`, `POST /_standin/reset`,
  `GET /_standin/requests`, `/_standin/submissions`, `/_standin/webhooks`, `/_standin/health`.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import functools
import hashlib
import io
import json
import logging
import random
import re
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageOps
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Request, Response

from fluxrelay.adapters.wavespeed import sign_wavespeed_webhook
from fluxrelay.models.wire import MODEL_ID

logger = logging.getLogger(__name__)

FAIL_MARKER = "[fail]"
HANG_MARKER = "[hang]"
NSFW_MARKER = "[nsfw]"
FORMATS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}
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


# --- faults -----------------------------------------------------------------------------------
@dataclass
class Faults:
    """Run-time switchable faults. Counters (`int`) apply to the next N matching requests/tasks.

    Set them from Python (`standin.faults.submit_429 = 2`) or over HTTP
    (`POST /_standin/faults {"submit_429": 2}`); `POST /_standin/reset` clears them.
    """

    submit_429: int = 0  # next N submits answer 429
    submit_429_retry_after: float | None = None  # their Retry-After header (None = no header)
    submit_5xx: int = 0  # next N submits answer 500 without creating a task
    submit_hang: int = 0  # next N submits create the task, then hang before answering
    submit_hang_seconds: float = 5.0
    submit_5xx_after_create: int = 0  # next N submits create the task, then answer 500
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- images -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def render_image(prompt: str, seed: int, index: int, width: int, height: int, output_format: str) -> bytes:
    """A real, deterministic image: a two-colour gradient plus shapes, all drawn from a hash of
    (seed, prompt, index), so different prompts or seeds give visibly different pictures."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    gradient = Image.linear_gradient("L").transpose(rng.choice(list(Image.Transpose)[:4]))
    gradient = Image.blend(gradient, Image.radial_gradient("L"), rng.uniform(0.0, 0.6))
    image = ImageOps.colorize(gradient.resize((width, height), Image.Resampling.BILINEAR), colour(), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(4, 9)):
        x0, x1 = sorted(rng.randrange(width) for _ in range(2))
        y0, y1 = sorted(rng.randrange(height) for _ in range(2))
        kind = rng.choice(("ellipse", "rectangle", "polygon"))
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour(), outline=colour(), width=max(1, width // 200))
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        else:
            points = [(rng.randrange(width), rng.randrange(height)) for _ in range(3)]
            draw.polygon(points, fill=colour())
    draw.text((8, 8), f"stand-in seed={seed} #{index}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    pil_format = FORMATS[output_format][0]
    options = {"quality": 85} if pil_format in {"JPEG", "WEBP"} else {}
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


# --- tasks ------------------------------------------------------------------------------------
@dataclass
class _Task:
    id: str
    params: dict[str, Any]
    webhook: str | None
    base_url: str
    created_at: str
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


class _ApiError(Exception):
    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def _rfc3339(wall: float) -> str:
    nanos = int(wall * 1_000_000_000)
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos % 1_000_000_000:09d}Z"


def _envelope(data: Any, code: int = 200, message: str = "success", headers: dict[str, str] | None = None):
    body = json.dumps({"code": code, "message": message, "data": data})
    return Response(body, status=code, mimetype="application/json", headers=headers)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# --- the server -------------------------------------------------------------------------------
class StandIn:
    """The WaveSpeed stand-in server. `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = "standin-key",
        seconds_per_image: float = 1.0,
        queue_seconds: float = 0.2,
        sync_timeout_seconds: float = 90.0,
        webhook_secret: str | None = None,
        webhook_retries: int = 3,
        webhook_backoff_seconds: float = 1.0,
        webhook_include_input: bool = False,
        base64_data_uri: bool = False,
        size_multiple: int = 1,
        public_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] | None = None,
        quiet: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.seconds_per_image = seconds_per_image
        self.queue_seconds = queue_seconds
        self.sync_timeout_seconds = sync_timeout_seconds
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_urlsafe(24)
        self.webhook_retries = webhook_retries
        self.webhook_backoff_seconds = webhook_backoff_seconds
        self.webhook_include_input = webhook_include_input
        self.base64_data_uri = base64_data_uri
        self.size_multiple = max(1, size_multiple)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.faults = Faults()
        self._clock = clock
        self._wall_clock = wall_clock
        self._stop_event = threading.Event()
        # Default sleep is interruptible by stop(), so a blocked sync submit never delays shutdown.
        self._sleep = sleep or self._stop_event.wait
        self._quiet = quiet
        self._cond = threading.Condition()  # guards everything below; RLock inside
        self._tasks: dict[str, _Task] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._received: list[dict[str, Any]] = []
        self._submissions: list[dict[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []
        self._server: BaseWSGIServer | None = None
        self._webhook_http: httpx.Client | None = None
        self._url_map = Map(
            [
                Rule("/api/v3/predictions/<task_id>/result", methods=["GET"], endpoint="result"),
                Rule("/api/v3/predictions/<task_id>", methods=["GET"], endpoint="result"),
                Rule("/api/v3/webhook/secret", methods=["GET"], endpoint="webhook_secret"),
                Rule("/api/v3/media/upload/binary", methods=["POST"], endpoint="upload_binary"),
                Rule("/api/v3/media/uploads", methods=["POST"], endpoint="upload_ticket"),
                Rule("/api/v3/<path:model>", methods=["POST"], endpoint="submit"),
                Rule("/upload/<token>", methods=["PUT"], endpoint="upload_put"),
                Rule("/media/<token>/<filename>", methods=["GET"], endpoint="media"),
                Rule("/output/<task_id>/<name>", methods=["GET"], endpoint="output"),
                Rule("/_standin/faults", methods=["GET", "POST"], endpoint="control_faults"),
                Rule("/_standin/reset", methods=["POST"], endpoint="control_reset"),
                Rule("/_standin/requests", methods=["GET"], endpoint="control_requests"),
                Rule("/_standin/submissions", methods=["GET"], endpoint="control_submissions"),
                Rule("/_standin/webhooks", methods=["GET"], endpoint="control_webhooks"),
                Rule("/_standin/health", methods=["GET"], endpoint="control_health"),
            ]
        )

    # -- lifecycle --
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        host = "127.0.0.1" if self.host in {"", "0.0.0.0", "::"} else self.host
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> StandIn:
        if self._server is not None:
            return self
        if self._stop_event.is_set():
            raise RuntimeError("a stopped stand-in cannot be restarted; build a new one")
        handler = _QuietHandler if self._quiet else WSGIRequestHandler
        self._server = make_server(self.host, self.port, self, threaded=True, request_handler=handler)
        self._webhook_http = httpx.Client(timeout=httpx.Timeout(5.0), follow_redirects=False)
        # A short poll interval keeps stop() fast (serve_forever checks for shutdown this often).
        self._spawn(self._server.serve_forever, "standin-http", 0.05)
        self._spawn(self._dispatch_webhooks, "standin-webhooks")
        return self

    def stop(self) -> None:
        self._stop_event.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._webhook_http is not None:
            self._webhook_http.close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., Any], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    # -- introspection --
    @property
    def received(self) -> list[dict[str, Any]]:
        """Every request except /_standin ones: method, path, query, json, headers (no
        Authorization), auth ("valid"|"invalid"|"missing"), body_size. A snapshot copy."""
        with self._cond:
            return list(self._received)

    @property
    def submissions(self) -> list[dict[str, Any]]:
        """Accepted submits: id, input (after defaults and dropping unknown keys), dropped_keys,
        webhook, body (as received)."""
        with self._cond:
            return list(self._submissions)

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook attempt: task_id, url, attempt, status (HTTP code or None), error."""
        with self._cond:
            return list(self._deliveries)

    def reset(self) -> None:
        """Forget faults, tasks, uploads and recorded traffic (keys and secret stay)."""
        with self._cond:
            self.faults = Faults()
            self._tasks.clear()
            self._uploads.clear()
            self._received.clear()
            self._submissions.clear()
            self._deliveries.clear()

    def poke(self) -> None:
        """Re-evaluate task states now (after a test moved an injected clock) so webhooks fire."""
        with self._cond:
            self._cond.notify_all()

    def task_status(self, task_id: str) -> str:
        with self._cond:
            now = self._clock()
            self._advance(now)
            return self._status(self._tasks[task_id], now)

    # -- WSGI --
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if not request.path.startswith("/_standin/"):
            self._record(request)
        try:
            endpoint, args = self._url_map.bind_to_environ(environ).match()
            response = getattr(self, f"_on_{endpoint}")(request, **args)
        except _ApiError as exc:
            response = _envelope(None, exc.code, exc.message, exc.headers)
        except HTTPException as exc:
            response = _envelope(None, exc.code or 500, exc.description or exc.name)
        except Exception:
            # True boundary: a stand-in bug must surface as a 500 envelope, not a dropped socket.
            logger.exception("stand-in handler failed")
            response = _envelope(None, 500, "internal server error")
        finally:
            self.poke()
        return response(environ, start_response)

    def _record(self, request: Request) -> None:
        body = request.get_data(cache=True)
        parsed = None
        if request.mimetype == "application/json":
            try:
                parsed = json.loads(body) if body else None
            except (ValueError, UnicodeDecodeError):
                parsed = None
        auth = request.headers.get("Authorization")
        auth_state = "valid" if auth == f"Bearer {self.api_key}" else "invalid"
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(),
            "json": parsed,
            "headers": {k: v for k, v in request.headers.items() if k.lower() != "authorization"},
            "auth": "missing" if auth is None else auth_state,
            "body_size": len(body),
        }
        with self._cond:
            self._received.append(entry)

    def _require_auth(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), self.api_key):
            raise _ApiError(401, "Unauthorized: invalid or missing API key")

    def _base_url(self, request: Request) -> str:
        return self.public_url or request.host_url.rstrip("/")

    # -- submit --
    def _on_submit(self, request: Request, model: str) -> Response:
        self._require_auth(request)
        if model != MODEL_ID:
            raise _ApiError(404, f"model not found: {model}")
        with self._cond:
            if self._take("submit_429"):
                retry_after = self.faults.submit_429_retry_after
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
                raise _ApiError(429, "Too Many Requests: rate limit exceeded", headers)
            if self._take("submit_5xx"):
                raise _ApiError(500, "internal server error")
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except (ValueError, UnicodeDecodeError):
            raise _ApiError(400, "invalid JSON body") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "request body must be a JSON object")
        params = self._validate(body)
        webhook = request.args.get("webhook") or None
        if webhook is not None and not webhook.startswith(("https://", "http://")):
            raise _ApiError(400, "webhook must be an http(s) URL")

        task = self._create_task(params, webhook, self._base_url(request), body)
        with self._cond:
            if self._take("submit_5xx_after_create"):
                raise _ApiError(500, "internal server error")
            hang = self._take("submit_hang")
        if hang:
            # The task exists (and would be billed) but the answer never comes in time.
            self._stop_event.wait(self.faults.submit_hang_seconds)
        if params["enable_sync_mode"]:
            return _envelope(self._wait_sync(task))
        with self._cond:
            now = self._clock()
            self._advance(now)
            return _envelope(self._prediction(task, now))

    def _validate(self, body: dict[str, Any]) -> dict[str, Any]:
        def number(name: str, default: float, low: float, high: float) -> float:
            value = body.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise _ApiError(400, f"{name} must be a number between {low:g} and {high:g}")
            return value

        def integer(name: str, default: int, low: int, high: int) -> int:
            value = body.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _ApiError(400, f"{name} must be an integer between {low} and {high}")
            return value

        def flag(name: str, default: bool) -> bool:
            value = body.get(name, default)
            if not isinstance(value, bool):
                raise _ApiError(400, f"{name} must be a boolean")
            return value

        def text(name: str) -> str:
            value = body.get(name, "")
            if value is None:
                return ""
            if not isinstance(value, str):
                raise _ApiError(400, f"{name} must be a string")
            return value

        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _ApiError(400, "prompt is required and must be a non-empty string")
        size = body.get("size", "1024*1024")
        match = SIZE_RE.match(size) if isinstance(size, str) else None
        if not match or not all(256 <= int(side) <= 1536 for side in match.groups()):
            raise _ApiError(400, "size must be 'W*H' with each side between 256 and 1536")
        loras = body.get("loras", [])
        if loras is None:
            loras = []
        if not isinstance(loras, list) or len(loras) > 3:
            raise _ApiError(400, "loras must be a list of at most 3 items")
        for item in loras:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
                raise _ApiError(400, "each lora needs a non-empty string path")
            scale = item.get("scale")
            if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.0 <= scale <= 4.0:
                raise _ApiError(400, "each lora needs a scale between 0 and 4")
        output_format = body.get("output_format", "jpeg")
        if output_format not in FORMATS:
            raise _ApiError(400, "output_format must be one of jpeg, png, webp")
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

    def _create_task(self, params: dict[str, Any], webhook: str | None, base_url: str, body: dict) -> _Task:
        bad_lora = next(
            (
                lora["path"]
                for lora in params["loras"]
                if not (LORA_PATH_RE.match(lora["path"]) or lora["path"].startswith("https://"))
            ),
            None,
        )
        with self._cond:
            error = None
            if FAIL_MARKER in params["prompt"] or self._take("fail_next"):
                error = self.faults.fail_error
            elif bad_lora is not None:
                error = f"failed to load LoRA {bad_lora!r}"
            never = HANG_MARKER in params["prompt"] or self._take("never_finish_next")
            now = self._clock()
            task = _Task(
                id=uuid.uuid4().hex,
                params=params,
                webhook=webhook,
                base_url=base_url,
                created_at=_rfc3339(self._wall_clock()),
                ready_at=now + self.queue_seconds,
                duration=self.seconds_per_image * params["num_images"],
                error=error,
                never_finish=never and error is None,
            )
            self._tasks[task.id] = task
            self._submissions.append(
                {
                    "id": task.id,
                    "input": params,
                    "dropped_keys": sorted(set(body) - set(SUBMIT_FIELDS)),
                    "webhook": webhook,
                    "body": body,
                }
            )
            self._advance(now)
            return task

    def _wait_sync(self, task: _Task) -> dict[str, Any]:
        with self._cond:
            deadline = self._clock() + self.sync_timeout_seconds
        while True:
            with self._cond:
                now = self._clock()
                self._advance(now)
                status = self._status(task, now)
                if status in {"completed", "failed"}:
                    return self._prediction(task, now)
                if now >= deadline or self._stop_event.is_set():
                    prediction = self._prediction(task, now)
                    prediction["code"] = 5004
                    prediction["error"] = (
                        f"Sync mode timed out after {self.sync_timeout_seconds:g} seconds; the task is "
                        "still processing, query its result later"
                    )
                    return prediction
                # Sleep until the task may end (or start, when queued), never past the deadline.
                wake = [deadline]
                if task.ends_at is not None:
                    wake.append(task.ends_at)
                elif task.started_at is None:
                    wake.append(max(task.ready_at, now + 0.05))
                step = min(wake) - now
            self._sleep(max(step, 0.001))

    # -- task state (lazy) --
    def _take(self, name: str) -> bool:
        count = getattr(self.faults, name)
        if count > 0:
            setattr(self.faults, name, count - 1)
            return True
        return False

    def _advance(self, now: float) -> None:
        """Give queued tasks their start time, FIFO, honouring `faults.max_concurrent`."""
        limit = self.faults.max_concurrent
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
    def _status(task: _Task, now: float) -> str:
        if task.started_at is None or task.started_at > now:
            return "created"
        ends_at = task.ends_at
        if ends_at is None or now < ends_at:
            return "processing"
        return "failed" if task.error else "completed"

    def _prediction(self, task: _Task, now: float) -> dict[str, Any]:
        status = self._status(task, now)
        terminal = status in {"completed", "failed"}
        outputs = self._outputs(task) if status == "completed" else []
        elapsed_ms = int(task.duration * 1000) if terminal else 0
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

    def _image_size(self, params: dict[str, Any]) -> tuple[int, int]:
        width, height = (int(side) for side in params["size"].split("*"))
        return width - width % self.size_multiple, height - height % self.size_multiple

    def _outputs(self, task: _Task) -> list[str]:
        if task.outputs is None:
            params = task.params
            fmt = params["output_format"]
            if params["enable_base64_output"]:
                width, height = self._image_size(params)
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

    # -- result and outputs --
    def _on_result(self, request: Request, task_id: str) -> Response:
        self._require_auth(request)
        if self.faults.result_delay > 0:
            self._stop_event.wait(self.faults.result_delay)
        with self._cond:
            if self._take("result_5xx"):
                raise _ApiError(self.faults.result_5xx_status, "internal server error")
            task = self._tasks.get(task_id)
            if task is None or self.faults.tasks_expired:
                raise _ApiError(404, f"prediction {task_id} not found")
            now = self._clock()
            self._advance(now)
            prediction = self._prediction(task, now)
            if self.faults.result_status:
                prediction["status"] = self.faults.result_status
        return _envelope(prediction)

    def _on_output(self, request: Request, task_id: str, name: str) -> Response:
        index_text, _, ext = name.partition(".")
        with self._cond:
            task = self._tasks.get(task_id)
            now = self._clock()
            self._advance(now)
            ok = (
                task is not None
                and not self.faults.outputs_expired
                and self._status(task, now) == "completed"
                and ext == task.params["output_format"]
                and index_text.isdigit()
                and int(index_text) < task.params["num_images"]
            )
        if not ok or task is None:
            return Response("Not Found", status=404, mimetype="text/plain")
        params = task.params
        width, height = self._image_size(params)
        data = render_image(params["prompt"], params["seed"], int(index_text), width, height, ext)
        return Response(data, mimetype=FORMATS[ext][1])

    # -- webhooks --
    def _on_webhook_secret(self, request: Request) -> Response:
        self._require_auth(request)
        return _envelope({"secret": self.webhook_secret})

    def _dispatch_webhooks(self) -> None:
        """Fire each task's webhook once it ends (lazy state evaluated on every wake-up)."""
        with self._cond:
            while not self._stop_event.is_set():
                now = self._clock()
                self._advance(now)
                upcoming: list[float] = []
                for task in self._tasks.values():
                    if not task.webhook or task.webhook_scheduled:
                        continue
                    if self._status(task, now) in {"completed", "failed"}:
                        task.webhook_scheduled = True
                        if self._take("webhooks_lost"):
                            continue
                        prediction = self._prediction(task, now)
                        if self.webhook_include_input:
                            prediction["input"] = task.params
                        body = json.dumps(prediction).encode()
                        self._spawn(self._deliver, f"standin-webhook-{task.id}", task.id, task.webhook, body)
                    elif task.ends_at is not None:
                        upcoming.append(task.ends_at)
                    elif task.started_at is None:
                        upcoming.append(task.ready_at)
                # Wake up when the next task may end; any request or poke() wakes us earlier.
                timeout = min(max(min(upcoming) - now, 0.005), 1.0) if upcoming else 1.0
                self._cond.wait(timeout)

    def _deliver(self, task_id: str, url: str, body: bytes) -> None:
        webhook_id = f"msg_{uuid.uuid4().hex}"  # the same id on every retry, as upstream does
        for attempt in range(1 + self.webhook_retries):
            if self._stop_event.is_set() or self._webhook_http is None:
                return
            timestamp = str(int(self._wall_clock()))
            headers = {
                "Content-Type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": sign_wavespeed_webhook(self.webhook_secret, webhook_id, timestamp, body),
            }
            status: int | None = None
            error = ""
            try:
                status = self._webhook_http.post(url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            with self._cond:
                self._deliveries.append(
                    {"task_id": task_id, "url": url, "attempt": attempt, "status": status, "error": error}
                )
            if status is not None and 200 <= status < 300:
                return
            if attempt < self.webhook_retries:
                self._stop_event.wait(self.webhook_backoff_seconds * 2**attempt)

    # -- uploads --
    def _on_upload_binary(self, request: Request) -> Response:
        self._require_auth(request)
        upload = request.files.get("file")
        if upload is None:
            raise _ApiError(400, "multipart field 'file' is required")
        data = upload.read()
        filename = secure_filename(upload.filename or "") or "upload"
        content_type = upload.mimetype or "application/octet-stream"
        token = secrets.token_hex(16)
        with self._cond:
            self._uploads[token] = {"filename": filename, "content_type": content_type, "data": data}
        return _envelope(
            {
                "type": content_type.split("/", 1)[0],
                "download_url": f"{self._base_url(request)}/media/{token}/{filename}",
                "filename": filename,
                "size": len(data),
            }
        )

    def _on_upload_ticket(self, request: Request) -> Response:
        self._require_auth(request)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("filename"), str) or not body["filename"]:
            raise _ApiError(400, "filename is required")
        size = body.get("size", 0)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _ApiError(400, "size must be a non-negative integer")
        content_type = body.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str):
            raise _ApiError(400, "content_type must be a string")
        filename = secure_filename(body["filename"]) or "upload"
        token = secrets.token_hex(16)
        with self._cond:
            self._uploads[token] = {"filename": filename, "content_type": content_type, "data": None}
        base = self._base_url(request)
        return _envelope(
            {
                "download_url": f"{base}/media/{token}/{filename}",
                "filename": filename,
                "size": size,
                "upload": {
                    "method": "PUT",
                    "url": f"{base}/upload/{token}",
                    "headers": {"Content-Type": content_type},
                },
            }
        )

    def _on_upload_put(self, request: Request, token: str) -> Response:
        # Behaves like an S3 presigned PUT: the ticket is the credential, so an Authorization
        # header is an error, and the signed Content-Type must match exactly.
        with self._cond:
            ticket = self._uploads.get(token)
        if ticket is None:
            return Response("NoSuchUpload", status=404, mimetype="text/plain")
        if "Authorization" in request.headers:
            return Response("InvalidArgument: only one auth mechanism allowed", status=400)
        if request.headers.get("Content-Type", "") != ticket["content_type"]:
            return Response("SignatureDoesNotMatch: Content-Type differs from the ticket", status=403)
        with self._cond:
            ticket["data"] = request.get_data()
        return Response("", status=200)

    def _on_media(self, request: Request, token: str, filename: str) -> Response:
        with self._cond:
            ticket = self._uploads.get(token)
        if ticket is None or ticket["data"] is None or ticket["filename"] != filename:
            return Response("Not Found", status=404, mimetype="text/plain")
        return Response(ticket["data"], mimetype=ticket["content_type"])

    # -- control routes (no auth) --
    def _on_control_faults(self, request: Request) -> Response:
        if request.method == "POST":
            changes = request.get_json(silent=True)
            if not isinstance(changes, dict):
                raise _ApiError(400, "body must be a JSON object of fault names to values")
            with self._cond:
                try:
                    self.faults.update(**changes)
                except KeyError as exc:
                    raise _ApiError(400, str(exc.args[0])) from None
        with self._cond:
            return _envelope(self.faults.as_dict())

    def _on_control_reset(self, request: Request) -> Response:
        self.reset()
        return _envelope({"reset": True})

    def _on_control_requests(self, request: Request) -> Response:
        return _envelope(self.received)

    def _on_control_submissions(self, request: Request) -> Response:
        return _envelope(self.submissions)

    def _on_control_webhooks(self, request: Request) -> Response:
        return _envelope(self.webhook_deliveries)

    def _on_control_health(self, request: Request) -> Response:
        return _envelope({"ok": True})


# --- CLI --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local WaveSpeed v3 stand-in for fluxrelay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--api-key", default="standin-key")
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--seconds-per-image", type=float, default=1.0)
    parser.add_argument("--queue-seconds", type=float, default=0.2)
    parser.add_argument("--sync-timeout-seconds", type=float, default=90.0)
    parser.add_argument("--public-url", default=None, help="base URL of output links (default: request host)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    standin = StandIn(
        args.host,
        args.port,
        api_key=args.api_key,
        webhook_secret=args.webhook_secret,
        seconds_per_image=args.seconds_per_image,
        queue_seconds=args.queue_seconds,
        sync_timeout_seconds=args.sync_timeout_seconds,
        public_url=args.public_url,
        quiet=args.quiet,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    standin.start()
    print(
        f"WaveSpeed stand-in ready at {standin.url} (api key: {standin.api_key}, "
        f"webhook secret: {standin.webhook_secret}); Ctrl-C to stop",
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
        print("stand-in stopped", flush=True)


if __name__ == "__main__":
    main()
