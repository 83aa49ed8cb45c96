"""The WaveSpeed v3 adapter: an httpx client for `wavespeed-ai/flux-schnell-lora` and the verifier
for WaveSpeed's inbound webhooks.

The one rule that shapes `submit`: a POST that may have reached WaveSpeed may have created a billed
task, so it is retried only when we are *certain* nothing arrived (the connection never opened) or
WaveSpeed told us so (429). Everything else after the request left is an `AmbiguousSubmitError`.
`get_result` is idempotent and retries transient failures with capped exponential backoff.

The API key is sent in the `Authorization` header only; nothing here logs headers, and messages are
scrubbed of the key as a last line of defence (an upstream error text could echo it).
WaveSpeed's API reference: https://wavespeed.ai/docs
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx
from pydantic import (
    SecretStr,
    ValidationError,
)

from fluxrelay.domain.errors import (
    AmbiguousSubmitError,
    InvalidRequestError,
    UnauthorizedError,
    UnknownTaskError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)
from fluxrelay.models import MODEL_ID
from fluxrelay.models.upstream import UpstreamPrediction
from fluxrelay.observability import logger

MODEL_PATH = f"/api/v3/{MODEL_ID}"
RESULT_PATH = "/api/v3/predictions/{task_id}/result"
WEBHOOK_SECRET_PATH = "/api/v3/webhook/secret"  # noqa: S105 (a path, not a secret)

WEBHOOK_SIGNATURE_VERSION = "v3"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
WEBHOOK_TOLERANCE_SECONDS = 300

# Task ids are 32 lowercase hex upstream; accept a little more, but never anything that could
# change the path we request.
_TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_BACKOFF_SECONDS = 30.0
_MAX_MESSAGE_CHARS = 500


# --- client -----------------------------------------------------------------------------------
class WaveSpeedClient:
    """Synchronous WaveSpeed v3 client. Build one per container and reuse it (it owns a
    connection pool); pass `http` to inject a client (tests, custom transports)."""

    model_path = MODEL_PATH
    result_path = RESULT_PATH

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | Callable[[], str],
        *,
        http: httpx.Client | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        submit_read_timeout: float | None = None,
        submit_retry_budget: float = 10.0,
        get_retries: int = 4,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # A callable is asked once, on the first request (the key may live in Secrets Manager).
        self._key_source = api_key
        self._key: str | None = None
        # Timeouts are always explicit: httpx defaults to 5 s everywhere, too short for a sync
        # read and silently different from what the settings say.
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._submit_timeout = httpx.Timeout(submit_read_timeout or read_timeout, connect=connect_timeout)
        self._http = http or httpx.Client(timeout=self._timeout, follow_redirects=False)
        self._owns_http = http is None
        self._submit_retry_budget = submit_retry_budget
        self._get_retries = max(0, get_retries)
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"WaveSpeedClient(base_url={self._base_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> WaveSpeedClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public calls --
    def submit(self, payload: Mapping[str, Any], *, webhook: str | None = None) -> UpstreamPrediction:
        """POST a generation task. Retried only while certain it never arrived, or on 429,
        within `submit_retry_budget` seconds; never resent once it may have reached WaveSpeed."""
        url = self._base_url + self.model_path
        params = {"webhook": webhook} if webhook else None
        deadline = self._clock() + self._submit_retry_budget
        attempt = 0
        while True:
            try:
                response = self._http.post(
                    url,
                    json=dict(payload),
                    params=params,
                    headers=self._headers(),
                    timeout=self._submit_timeout,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The connection never opened (refused, DNS, connect timeout): nothing was sent.
                delay = self._backoff(attempt)
                if self._clock() + delay > deadline:
                    raise UpstreamUnavailableError(
                        self._scrub(
                            f"could not connect to WaveSpeed to submit ({type(exc).__name__}) "
                            f"within {self._submit_retry_budget:g} s; nothing was sent"
                        )
                    ) from exc
                logger.warning(
                    "upstream submit connect failed, retrying",
                    extra={"error_type": type(exc).__name__, "attempt": attempt + 1, "delay": delay},
                )
                self._sleep(delay)
                attempt += 1
                continue
            except httpx.TransportError as exc:
                # Read/write timeout, dropped connection...: the request may have been processed.
                raise AmbiguousSubmitError(
                    self._scrub(
                        f"submit failed after the request was sent ({type(exc).__name__}): the task "
                        "may exist upstream (and be billed) and was not resent"
                    )
                ) from exc

            code, message, data = self._decode(response)
            if code == 429:
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                if self._clock() + delay > deadline:
                    raise UpstreamRateLimitedError(
                        self._scrub(f"WaveSpeed rate limit (429) on submit: {message}"),
                        retry_after=retry_after if retry_after is not None else delay,
                    )
                logger.warning(
                    "upstream submit rate limited, retrying",
                    extra={"attempt": attempt + 1, "delay": delay, "retry_after": retry_after},
                )
                self._sleep(delay)
                attempt += 1
                continue
            if code == 200 and isinstance(data, dict):
                try:
                    return UpstreamPrediction.model_validate(data)
                except ValidationError as exc:
                    raise AmbiguousSubmitError(
                        "submit answered 200 with an unreadable prediction: the task may exist "
                        "upstream and was not resent"
                    ) from exc
            if 400 <= code < 500:
                self._raise_client_error(code, message, operation="submit")
            # 5xx, non-JSON or nonsense after the request arrived: WaveSpeed may have created it.
            raise AmbiguousSubmitError(
                self._scrub(
                    f"submit got an unusable answer (HTTP {response.status_code}, code {code}: "
                    f"{message}): the task may exist upstream (and be billed) and was not resent"
                )
            )

    def get_result(self, task_id: str) -> UpstreamPrediction:
        """GET a task's current state. Retries 429, 5xx and network errors up to `get_retries`
        times with backoff (honouring Retry-After), then raises a retryable error."""
        if not _TASK_ID_RE.fullmatch(task_id):
            raise UnknownTaskError(f"malformed upstream task id {task_id[:64]!r}")
        url = self._base_url + self.result_path.format(task_id=task_id)
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._http.get(url, headers=self._headers(), timeout=self._timeout)
            except httpx.TransportError as exc:
                failure: Exception = UpstreamUnavailableError(
                    self._scrub(f"WaveSpeed result fetch failed ({type(exc).__name__}) for task {task_id}")
                )
                cause: BaseException | None = exc
            else:
                cause = None
                code, message, data = self._decode(response)
                if code == 200 and isinstance(data, dict):
                    try:
                        return UpstreamPrediction.model_validate(data)
                    except ValidationError as exc:
                        failure = UpstreamUnavailableError(
                            f"WaveSpeed returned an unreadable prediction for task {task_id}"
                        )
                        cause = exc
                elif code == 404:
                    raise UnknownTaskError(self._scrub(f"WaveSpeed does not know task {task_id}: {message}"))
                elif code == 429:
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                    failure = UpstreamRateLimitedError(
                        self._scrub(f"WaveSpeed rate limit (429) fetching task {task_id}: {message}"),
                        retry_after=retry_after,
                    )
                elif 400 <= code < 500:
                    self._raise_client_error(code, message, operation=f"result of task {task_id}")
                else:
                    failure = UpstreamUnavailableError(
                        self._scrub(
                            f"WaveSpeed result fetch for task {task_id} failed "
                            f"(HTTP {response.status_code}, code {code}): {message}"
                        )
                    )
            if attempt >= self._get_retries:
                raise failure from cause
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            logger.warning(
                "upstream result fetch failed, retrying",
                extra={"task_id": task_id, "attempt": attempt + 1, "delay": delay, "error": str(failure)},
            )
            self._sleep(delay)
            attempt += 1

    def webhook_secret(self) -> str:
        """The account's webhook signing secret (`whsec_...`), with which WaveSpeed signs the
        webhooks of every task submitted with this key."""
        response = self._http.get(self._base_url + WEBHOOK_SECRET_PATH, headers=self._headers())
        code, message, data = self._decode(response)
        if code == 200 and isinstance(data, dict) and isinstance(data.get("secret"), str):
            return str(data["secret"])
        if 400 <= code < 500:
            self._raise_client_error(code, message, operation="webhook secret")
        raise UpstreamUnavailableError(
            self._scrub(f"WaveSpeed webhook secret unavailable (HTTP {response.status_code}, code {code})")
        )

    # -- helpers --
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    @property
    def _api_key(self) -> str:
        if self._key is None:
            source = self._key_source
            if isinstance(source, SecretStr):
                self._key = source.get_secret_value()
            elif isinstance(source, str):
                self._key = source
            else:
                self._key = source()
        return self._key

    def _backoff(self, attempt: int) -> float:
        return min(self._backoff_base * (2**attempt), _MAX_BACKOFF_SECONDS)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _decode(self, response: httpx.Response) -> tuple[int, str, Any]:
        """(effective code, message, data). HTTP errors win; on HTTP 200 the envelope's `code`
        decides (some upstream errors arrive as 200 + code != 200). Non-JSON: code 0 unless
        the HTTP status says more."""
        status = response.status_code
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            snippet = response.text[:200] if response.content else "empty body"
            return (status if status != 200 else 0), f"non-JSON response: {snippet!r}", None
        if not isinstance(body, dict):
            return (status if status != 200 else 0), "response is not a JSON object", None
        message = str(body.get("message") or "")[:_MAX_MESSAGE_CHARS]
        envelope_code = body.get("code")
        if status != 200:
            return status, message or f"HTTP {status}", body.get("data")
        if not isinstance(envelope_code, int) or isinstance(envelope_code, bool):
            return 0, "response has no envelope code", None
        return envelope_code, message, body.get("data")

    def _raise_client_error(self, code: int, message: str, *, operation: str) -> NoReturn:
        if code == 401:
            raise UpstreamUnauthorizedError(
                f"WaveSpeed rejected our API key on {operation} (401): check the configured key"
            )
        raise UpstreamRejectedError(self._scrub(message or f"WaveSpeed rejected {operation}"), status=code)


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- webhooks (WaveSpeed -> us) ---------------------------------------------------------------
def _webhook_key(secret: str) -> bytes:
    # WaveSpeed's scheme: the secret minus `whsec_`, used as-is (NOT base64-decoded as in
    # Standard Webhooks), hex digest, `v3,` prefix.
    return secret.removeprefix(WEBHOOK_SECRET_PREFIX).encode()


def sign_wavespeed_webhook(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header value (`v3,<hex>`) for a body; the one place of the scheme."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_webhook_key(secret), message, hashlib.sha256).hexdigest()
    return f"{WEBHOOK_SIGNATURE_VERSION},{digest}"


def verify_wavespeed_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = WEBHOOK_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """Verify a WaveSpeed webhook and return its parsed JSON body.

    Raises `UnauthorizedError` (missing headers, stale timestamp, bad signature) and
    `InvalidRequestError` for a correctly signed body that is not a JSON object.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    webhook_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signature = lowered.get("webhook-signature")
    if not webhook_id or not timestamp or not signature:
        raise UnauthorizedError("webhook is missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise UnauthorizedError("webhook-timestamp is not a unix time in seconds") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise UnauthorizedError(f"webhook-timestamp is more than {tolerance:g} s away from now")
    expected = sign_wavespeed_webhook(secret, webhook_id, timestamp, body).encode()
    # The header may carry several space-separated signatures (key rotation).
    candidates = [part.encode() for part in signature.split() if part.startswith("v3,")]
    if not candidates:
        raise UnauthorizedError("webhook-signature has no v3 signature")
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise UnauthorizedError("webhook signature does not match")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequestError("webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError("webhook body is not a JSON object")
    return payload
