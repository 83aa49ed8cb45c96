"""`OutputSource`: fetch upstream output URLs through the SSRF guard, as a stream of chunks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fluxrelay.adapters.urlguard.rules import UrlPolicy
from fluxrelay.adapters.urlguard.transport import safe_stream
from fluxrelay.domain.errors import OutputUnavailableError, UnsafeUrlError

_GONE = {403: "forbidden", 404: "not found", 410: "gone"}


class GuardedOutputSource:
    def __init__(self, policy: UrlPolicy, *, max_bytes: int, timeout: float = 30.0) -> None:
        self._policy = policy
        self._max_bytes = max_bytes
        self._timeout = timeout

    @contextmanager
    def open(self, url: str) -> Iterator[Iterator[bytes]]:
        try:
            with safe_stream(
                "GET", url, self._policy, timeout=self._timeout, max_bytes=self._max_bytes, label="output URL"
            ) as response:
                status = response.status_code
                if status in _GONE:
                    raise OutputUnavailableError(
                        f"the upstream output is {_GONE[status]} (HTTP {status}); WaveSpeed deletes outputs "
                        "after 7 days"
                    )
                if status != 200:
                    raise OutputUnavailableError(f"the upstream output could not be fetched (HTTP {status})")
                yield iter(response)
        except UnsafeUrlError as exc:
            raise OutputUnavailableError(f"refused to fetch the upstream output: {exc.message}") from exc
