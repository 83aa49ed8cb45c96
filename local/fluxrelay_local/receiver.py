"""A webhook receiver on 127.0.0.1, for developers, the tests and the benchmark.

It records every successful delivery (headers, raw body, arrival time) and can answer a script
of statuses first (e.g. 500 then 200) to exercise redelivery, then whatever `respond` decides
(`fluxrelay receiver` verifies signatures there). Waiting is on a condition variable, never on
fixed sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time()

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(
        self,
        statuses: Iterable[int] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        respond: Callable[[Delivery], int] | None = None,
    ) -> None:
        self.statuses = list(statuses)
        self.respond = respond
        self.deliveries: list[Delivery] = []
        self.attempts = 0
        self._changed = threading.Condition()
        self._server = make_server(host, port, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        delivery = Delivery(dict(request.headers), request.get_data(), time.time())
        with self._changed:
            self.attempts += 1
            if self.statuses:
                status = self.statuses.pop(0)
            else:
                status = self.respond(delivery) if self.respond else 200
            if status < 300:
                self.deliveries.append(delivery)
            self._changed.notify_all()
        return Response("ok", status=status)(environ, start_response)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wait(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        with self._changed:
            if not self._changed.wait_for(probe, timeout):
                raise TimeoutError(f"no {what} within {timeout}s")
            result = probe()
            assert result is not None
            return result

    def wait(self, count: int = 1, timeout: float = 30.0) -> list[Delivery]:
        """The first `count` successful deliveries, once they have arrived."""
        return self._wait(
            lambda: self.deliveries[:count] if len(self.deliveries) >= count else None,
            timeout,
            f"{count} deliveries",
        )

    def arrival(self, job_id: str) -> Delivery | None:
        """The first successful delivery whose body is the prediction of `job_id`."""
        with self._changed:
            return next((d for d in self.deliveries if _job_id(d) == job_id), None)

    def wait_for_job(self, job_id: str, timeout: float = 30.0) -> Delivery:
        return self._wait(
            lambda: next((d for d in self.deliveries if _job_id(d) == job_id), None), timeout, job_id
        )


def _job_id(delivery: Delivery) -> str | None:
    try:
        return str(delivery.json()["id"])
    except (ValueError, KeyError, TypeError):
        return None


if __name__ == "__main__":
    # This module is the tests' and the benchmark's receiver; people run the command.
    raise SystemExit("fluxrelay_local.receiver is a library: run `fluxrelay receiver --port 8000` instead")
