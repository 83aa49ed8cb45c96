"""The SSRF guard's transport: requests to a URL `check_url` vetted, pinned to the vetted address.

`safe_request` / `safe_stream` connect to the vetted address itself (no second DNS lookup, so DNS
rebinding cannot swap in 127.0.0.1 after the check) while TLS still verifies the certificate
against the real host name; they never follow redirects, and cap the body size and the total time.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, TypedDict, Unpack

import httpx

from fluxrelay.adapters.urlguard.rules import (
    CheckedUrl,
    FetchError,
    Resolver,
    ResponseTooLargeError,
    UrlPolicy,
    check_url,
)

__all__ = ["DEFAULT_MAX_BYTES", "SafeResponse", "SafeStream", "safe_request", "safe_stream"]

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024


class RequestOptions(TypedDict, total=False):
    """The keyword options of `safe_stream`, which `safe_request` passes on."""

    content: bytes | None
    headers: Mapping[str, str] | None
    timeout: float
    max_bytes: int
    client: httpx.Client | None
    resolver: Resolver | None
    label: str


@dataclass(frozen=True, slots=True)
class SafeResponse:
    """A complete response (3xx included: redirects are never followed; callers treat them as failures)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (httpx.Headers)
    content: bytes
    checked: CheckedUrl | None = None
    address: str = ""  # the vetted IP we connected to


@dataclass(slots=True)
class SafeStream:
    """A response whose body is read by iterating it (once), chunk by chunk, under the byte cap."""

    status_code: int
    headers: Mapping[str, str]
    checked: CheckedUrl
    address: str
    _chunks: Iterator[bytes] = field(repr=False)

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def read(self) -> bytes:
        return b"".join(self._chunks)


def _fetch_error(exc: httpx.HTTPError, host: str) -> FetchError:
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(f"request to host {host} timed out ({type(exc).__name__})")
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FetchError(
                f"TLS certificate of host {host} failed verification: {cause.verify_message}",
                retryable=False,
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return FetchError(f"could not connect to host {host}")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return FetchError(f"connection to host {host} failed ({type(exc).__name__})")
    return FetchError(f"request to host {host} failed ({type(exc).__name__})", retryable=False)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The trust store of httpx's default client, loaded once per process: building it reads
    the whole CA bundle (tens of milliseconds of CPU), too much to spend on every fetch."""
    return httpx.create_ssl_context(trust_env=False)


def _request_headers(checked: CheckedUrl, headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    if not any(k.lower() == "accept-encoding" for k in out):
        # Byte caps count what arrives; a 10 KiB gzip bomb must not inflate to gigabytes first.
        out["Accept-Encoding"] = "identity"
    out["Host"] = checked.host_header
    return out


@contextlib.contextmanager
def safe_stream(
    method: str,
    url: str,
    policy: UrlPolicy,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    client: httpx.Client | None = None,
    resolver: Resolver | None = None,
    label: str = "URL",
) -> Iterator[SafeStream]:
    """Check `url`, send the request to a vetted address and yield the response for streaming.

    Iterating the yielded `SafeStream` gives the body in chunks; more than `max_bytes` raises
    `ResponseTooLargeError` (a larger `Content-Length` raises before the body is read). `timeout`
    bounds each network operation and the whole exchange (checked between chunks, so a server
    dripping bytes is cut off after about `timeout`, at worst 2 x `timeout`).

    Without `client`, a fresh client (no proxies or .netrc from the environment, the process's
    one TLS context) is used and closed.
    A shared `client` works too, but its connection pool is keyed by IP: share one only between
    URLs whose hosts you trust alike.
    """
    deadline = time.monotonic() + timeout
    checked = check_url(url, policy, resolver=resolver, label=label)
    request_headers = _request_headers(checked, headers)
    # TLS: connect to the IP, but send SNI and verify the certificate for the real name
    # (httpcore reads the `sni_hostname` request extension; see httpcore/_sync/connection.py).
    extensions = {} if checked.is_ip_literal else {"sni_hostname": checked.host}
    owns_client = client is None
    http = client or httpx.Client(trust_env=False, follow_redirects=False, verify=tls_context())
    response: httpx.Response | None = None
    try:
        address = ""
        for index, address in enumerate(checked.addresses):
            remaining = max(deadline - time.monotonic(), 0.001)
            request = http.build_request(
                method.upper(),
                checked.pinned_url(address),
                content=content,
                headers=request_headers,
                timeout=httpx.Timeout(min(timeout, remaining)),
                extensions=extensions,
            )
            try:
                response = http.send(request, stream=True, follow_redirects=False)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing was sent: trying the next vetted address is safe even for a POST.
                error = _fetch_error(exc, checked.host)
                if not error.retryable or index == len(checked.addresses) - 1:
                    raise error from exc
                if time.monotonic() >= deadline:
                    raise FetchError(f"request to host {checked.host} timed out") from exc
            except httpx.HTTPError as exc:
                raise _fetch_error(exc, checked.host) from exc
        assert response is not None

        declared = response.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise ResponseTooLargeError(
                f"response from host {checked.host} is {int(declared)} bytes, more than {max_bytes}"
            )
        yield SafeStream(
            status_code=response.status_code,
            headers=response.headers,
            checked=checked,
            address=address,
            _chunks=_capped_chunks(response, checked.host, max_bytes, deadline, timeout),
        )
    finally:
        if response is not None:
            response.close()
        if owns_client:
            http.close()


def _capped_chunks(
    response: httpx.Response, host: str, max_bytes: int, deadline: float, timeout: float
) -> Iterator[bytes]:
    received = 0
    try:
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > max_bytes:
                raise ResponseTooLargeError(f"response from host {host} is larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError(f"request to host {host} took longer than {timeout:g}s")
            yield chunk
    except httpx.HTTPError as exc:
        raise _fetch_error(exc, host) from exc
    finally:
        response.close()


def safe_request(method: str, url: str, policy: UrlPolicy, **options: Unpack[RequestOptions]) -> SafeResponse:
    """`safe_stream`, read whole. Raises `UnsafeUrlError`, `FetchError` or `ResponseTooLargeError`."""
    with safe_stream(method, url, policy, **options) as stream:
        body = stream.read()
        return SafeResponse(
            status_code=stream.status_code,
            headers=stream.headers,
            content=body,
            checked=stream.checked,
            address=stream.address,
        )
