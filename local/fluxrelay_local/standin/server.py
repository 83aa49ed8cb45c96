"""The stand-in server: WaveSpeed's v3 routes over werkzeug, and the stand-in's Python API."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from fluxrelay.models.wire import MODEL_ID
from fluxrelay_local.standin.control import PREFIX, control_rules
from fluxrelay_local.standin.faults import Faults
from fluxrelay_local.standin.images import FORMATS, render_image
from fluxrelay_local.standin.tasks import (
    FAIL_MARKER,
    HANG_MARKER,
    SUBMIT_FIELDS,
    TERMINAL,
    Task,
    TaskBoard,
    TaskInfo,
    bad_lora,
    validate_submit,
)
from fluxrelay_local.standin.uploads import Uploads
from fluxrelay_local.standin.webhooks import WebhookSender
from fluxrelay_local.standin.wire import ApiError, envelope, rfc3339

logger = logging.getLogger(__name__)
STATE_VERSION = 1


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class StandIn:
    """The WaveSpeed stand-in server. `start()`/`stop()` or use it as a context manager.

    Everything a test or tool needs is public: `faults` with `set_faults()`/`clear_faults()`,
    the recorded traffic (`received`, `submissions`, `webhook_deliveries`), each task's state
    (`task()`, `tasks()`, `task_status()`), `reset()`, `poke()` after moving an injected clock,
    and `export_state()`/`restore_state()` to carry tasks and the webhook secret across a restart.
    """

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
        self.webhook_include_input = webhook_include_input
        self.public_url = public_url.rstrip("/") if public_url else None
        self.faults = Faults()
        self._clock = clock
        self._wall_clock = wall_clock
        self._stop_event = threading.Event()
        # Default sleep is interruptible by stop(), so a blocked sync submit never delays shutdown.
        self._sleep = sleep or self._stop_event.wait
        self._quiet = quiet
        self._cond = threading.Condition()  # guards the faults, the tasks and the records below
        self._tasks = TaskBoard(size_multiple=size_multiple, base64_data_uri=base64_data_uri)
        self._uploads = Uploads()
        self._received: list[dict[str, Any]] = []
        self._submissions: list[dict[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []
        self._server: BaseWSGIServer | None = None
        self._webhooks = WebhookSender(
            lambda: self.webhook_secret,
            self._record_delivery,
            self._stop_event,
            retries=webhook_retries,
            backoff_seconds=webhook_backoff_seconds,
            wall_clock=wall_clock,
        )
        self._url_map = Map(
            [
                Rule("/api/v3/predictions/<task_id>/result", methods=["GET"], endpoint=self._on_result),
                Rule("/api/v3/predictions/<task_id>", methods=["GET"], endpoint=self._on_result),
                Rule("/api/v3/webhook/secret", methods=["GET"], endpoint=self._on_webhook_secret),
                Rule("/api/v3/media/upload/binary", methods=["POST"], endpoint=self._on_upload_binary),
                Rule("/api/v3/media/uploads", methods=["POST"], endpoint=self._on_upload_ticket),
                Rule("/api/v3/<path:model>", methods=["POST"], endpoint=self._on_submit),
                Rule("/upload/<token>", methods=["PUT"], endpoint=self._uploads.put),
                Rule("/media/<token>/<filename>", methods=["GET"], endpoint=self._on_media),
                Rule("/output/<task_id>/<name>", methods=["GET"], endpoint=self._on_output),
                *control_rules(self),
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
        self._webhooks.open()
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
        self._webhooks.close()

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

    # -- faults --
    def set_faults(self, **changes: Any) -> None:
        """Switch faults on (or off), e.g. `set_faults(submit_429=2)`; KeyError for unknown names."""
        with self._cond:
            self.faults.update(**changes)

    def clear_faults(self) -> None:
        with self._cond:
            self.faults = Faults()

    def fault_settings(self) -> dict[str, Any]:
        with self._cond:
            return self.faults.as_dict()

    # -- inspection --
    @property
    def received(self) -> list[dict[str, Any]]:
        """Every request except the control routes: method, path, query, json, headers (no
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

    def task(self, task_id: str) -> TaskInfo:
        """One task's status and moments; KeyError for a task the stand-in does not know."""
        with self._cond:
            now = self._advance()
            task = self._tasks.get(task_id)
            if task is None:
                raise KeyError(task_id)
            return self._tasks.info(task, now)

    def tasks(self) -> list[TaskInfo]:
        """Every task, in submit order."""
        with self._cond:
            now = self._advance()
            return [self._tasks.info(task, now) for task in self._tasks]

    def task_status(self, task_id: str) -> str:
        return self.task(task_id).status

    def finish(self, task_id: str) -> None:
        """End a task now, as if its processing took until now (a never-finishing one too):
        tests hold a task with `[hang]` and let it end when they choose."""
        with self._cond:
            now = self._advance()
            task = self._tasks.get(task_id)
            if task is None:
                raise KeyError(task_id)
            self._tasks.finish(task, now)
            self._cond.notify_all()

    def reset(self) -> None:
        """Forget faults, tasks, uploads and recorded traffic (keys and secret stay)."""
        with self._cond:
            self.faults = Faults()
            self._tasks.clear()
            self._received.clear()
            self._submissions.clear()
            self._deliveries.clear()
        self._uploads.clear()

    def poke(self) -> None:
        """Re-evaluate task states now (after a test moved an injected clock) so webhooks fire."""
        with self._cond:
            self._cond.notify_all()

    # -- state across restarts --
    def export_state(self) -> dict[str, Any]:
        """The tasks and the webhook secret as JSON-ready data, for `restore_state()` in the next
        stand-in: an upstream keeps its tasks and its secret while its callers restart. Task
        moments are wall-clock times, so the time in between counts as it would upstream."""
        with self._cond:
            now = self._advance()
            return {
                "version": STATE_VERSION,
                "url": self.url,
                "webhook_secret": self.webhook_secret,
                "tasks": self._tasks.export(now, self._wall_clock()),
            }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take over an exported state: its webhook secret, and its tasks, whose links now name
        this server. Tasks that ended meanwhile and never sent their webhook send it now."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"stand-in state version {state.get('version')!r}, expected {STATE_VERSION}")
        old_url, new_url = state.get("url"), self.url
        records = [
            {**record, "base_url": new_url if record["base_url"] == old_url else record["base_url"]}
            for record in state["tasks"]
        ]
        with self._cond:
            self.webhook_secret = state["webhook_secret"]
            self._tasks.load(records, self._clock(), self._wall_clock())
            self._cond.notify_all()

    # -- WSGI --
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if not request.path.startswith(PREFIX):
            self._record(request)
        try:
            handler, args = self._url_map.bind_to_environ(environ).match()
            response = handler(request, **args)
        except ApiError as exc:
            response = envelope(None, exc.code, exc.message, exc.headers)
        except HTTPException as exc:
            response = envelope(None, exc.code or 500, exc.description or exc.name)
        except Exception:
            # True boundary: a stand-in bug must surface as a 500 envelope, not a dropped socket.
            logger.exception("stand-in handler failed")
            response = envelope(None, 500, "internal server error")
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
            raise ApiError(401, "Unauthorized: invalid or missing API key")

    def _base_url(self, request: Request) -> str:
        return self.public_url or request.host_url.rstrip("/")

    def _advance(self) -> float:
        """The clock now, with queued tasks started up to it (caller holds the lock)."""
        now = self._clock()
        self._tasks.advance(now, self.faults.max_concurrent)
        return now

    # -- submit --
    def _on_submit(self, request: Request, model: str) -> Response:
        self._require_auth(request)
        if model != MODEL_ID:
            raise ApiError(404, f"model not found: {model}")
        with self._cond:
            if self.faults.take("submit_429"):
                retry_after = self.faults.submit_429_retry_after
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
                raise ApiError(429, "Too Many Requests: rate limit exceeded", headers)
            if self.faults.take("submit_5xx"):
                raise ApiError(500, "internal server error")
            reject = (
                self.faults.submit_reject_marker,
                self.faults.submit_reject_status,
                self.faults.submit_reject_message,
            )
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid JSON body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        marker, status, message = reject
        if marker and marker in str(body.get("prompt")):
            raise ApiError(status, message)
        params = validate_submit(body)
        webhook = request.args.get("webhook") or None
        if webhook is not None and not webhook.startswith(("https://", "http://")):
            raise ApiError(400, "webhook must be an http(s) URL")

        task = self._create_task(params, webhook, self._base_url(request), body)
        with self._cond:
            if self.faults.take("submit_5xx_after_create"):
                raise ApiError(500, "internal server error")
            hang = self.faults.take("submit_hang")
            hang_seconds = self.faults.submit_hang_seconds
        if hang:
            # The task exists (and would be billed) but the answer never comes in time.
            self._stop_event.wait(hang_seconds)
        if params["enable_sync_mode"]:
            return envelope(self._wait_sync(task))
        with self._cond:
            now = self._advance()
            return envelope(self._tasks.prediction(task, now))

    def _create_task(self, params: dict[str, Any], webhook: str | None, base_url: str, body: dict) -> Task:
        lora = bad_lora(params)
        with self._cond:
            error = None
            if FAIL_MARKER in params["prompt"] or self.faults.take("fail_next"):
                error = self.faults.fail_error
            elif lora is not None:
                error = f"failed to load LoRA {lora!r}"
            never = HANG_MARKER in params["prompt"] or self.faults.take("never_finish_next")
            now = self._clock()
            task = Task(
                id=uuid.uuid4().hex,
                params=params,
                webhook=webhook,
                base_url=base_url,
                created_at=rfc3339(self._wall_clock()),
                submitted_at=now,
                ready_at=now + self.queue_seconds,
                duration=self.seconds_per_image * params["num_images"],
                error=error,
                never_finish=never and error is None,
            )
            self._tasks.add(task)
            if error is None and not task.never_finish:
                self._spawn(self._render_outputs, f"standin-render-{task.id}", params)
            self._submissions.append(
                {
                    "id": task.id,
                    "input": params,
                    "dropped_keys": sorted(set(body) - set(SUBMIT_FIELDS)),
                    "webhook": webhook,
                    "body": body,
                }
            )
            self._advance()
            return task

    def _wait_sync(self, task: Task) -> dict[str, Any]:
        with self._cond:
            deadline = self._clock() + self.sync_timeout_seconds
        while True:
            with self._cond:
                now = self._advance()
                if self._tasks.status(task, now) in TERMINAL:
                    return self._tasks.prediction(task, now)
                if now >= deadline or self._stop_event.is_set():
                    prediction = self._tasks.prediction(task, now)
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

    # -- result and outputs --
    def _on_result(self, request: Request, task_id: str) -> Response:
        self._require_auth(request)
        if self.faults.result_delay > 0:
            self._stop_event.wait(self.faults.result_delay)
        with self._cond:
            if self.faults.take("result_5xx"):
                raise ApiError(self.faults.result_5xx_status, "internal server error")
            task = self._tasks.get(task_id)
            if task is None or self.faults.tasks_expired:
                raise ApiError(404, f"prediction {task_id} not found")
            now = self._advance()
            prediction = self._tasks.prediction(task, now)
            if self.faults.result_status:
                prediction["status"] = self.faults.result_status
        return envelope(prediction)

    def _render_outputs(self, params: dict[str, Any]) -> None:
        width, height = self._tasks.image_size(params)
        for n in range(params["num_images"]):
            if self._stop_event.is_set():
                return
            render_image(params["prompt"], params["seed"], n, width, height, params["output_format"])

    def _on_output(self, request: Request, task_id: str, name: str) -> Response:
        index_text, _, ext = name.partition(".")
        with self._cond:
            task = self._tasks.get(task_id)
            now = self._advance()
            ok = (
                task is not None
                and not self.faults.outputs_expired
                and self._tasks.status(task, now) == "completed"
                and ext == task.params["output_format"]
                and index_text.isdigit()
                and int(index_text) < task.params["num_images"]
            )
        if not ok or task is None:
            return Response("Not Found", status=404, mimetype="text/plain")
        params = task.params
        width, height = self._tasks.image_size(params)
        data = render_image(params["prompt"], params["seed"], int(index_text), width, height, ext)
        return Response(data, mimetype=FORMATS[ext][1])

    # -- webhooks --
    def _on_webhook_secret(self, request: Request) -> Response:
        self._require_auth(request)
        return envelope({"secret": self.webhook_secret})

    def _dispatch_webhooks(self) -> None:
        """Fire each task's webhook once it ends (lazy state evaluated on every wake-up)."""
        with self._cond:
            while not self._stop_event.is_set():
                now = self._advance()
                upcoming: list[float] = []
                for task in self._tasks:
                    if not task.webhook or task.webhook_scheduled:
                        continue
                    if self._tasks.status(task, now) in TERMINAL:
                        task.webhook_scheduled = True
                        if self.faults.take("webhooks_lost"):
                            continue
                        prediction = self._tasks.prediction(task, now)
                        if self.webhook_include_input:
                            prediction["input"] = task.params
                        body = json.dumps(prediction).encode()
                        self._spawn(
                            self._webhooks.deliver, f"standin-webhook-{task.id}", task.id, task.webhook, body
                        )
                    elif task.ends_at is not None:
                        upcoming.append(task.ends_at)
                    elif task.started_at is None:
                        upcoming.append(task.ready_at)
                # Wake up when the next task may end; any request or poke() wakes us earlier.
                timeout = min(max(min(upcoming) - now, 0.005), 1.0) if upcoming else 1.0
                self._cond.wait(timeout)

    def _record_delivery(self, attempt: dict[str, Any]) -> None:
        with self._cond:
            self._deliveries.append(attempt)

    # -- uploads --
    def _on_upload_binary(self, request: Request) -> Response:
        self._require_auth(request)
        return self._uploads.binary(request, self._base_url(request))

    def _on_upload_ticket(self, request: Request) -> Response:
        self._require_auth(request)
        return self._uploads.ticket(request, self._base_url(request))

    def _on_media(self, request: Request, token: str, filename: str) -> Response:
        return self._uploads.media(token, filename)
