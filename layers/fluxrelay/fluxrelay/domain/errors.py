"""Typed errors, translated at each edge.

Step Functions `Retry`/`Catch` match on the exception *class name* (the Lambda `errorType`),
so the names of the retryable errors below are part of the state machine's contract.
The API maps every `FluxRelayError` to the WaveSpeed envelope with `http_status`.
"""

from __future__ import annotations


class FluxRelayError(Exception):
    """Base of every error this package raises on purpose."""

    http_status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


# --- request-side errors (caller's fault) -------------------------------------------------
class InvalidRequestError(FluxRelayError):
    """The caller's input broke a rule; `message` names each field and rule."""

    http_status = 400


class UnsafeUrlError(InvalidRequestError):
    """A URL points somewhere we refuse to fetch from or post to (scheme, private address...)."""


class UnauthorizedError(FluxRelayError):
    http_status = 401


class NotFoundError(FluxRelayError):
    """Unknown id, or an id owned by somebody else (never reveal which)."""

    http_status = 404


class ConflictError(FluxRelayError):
    http_status = 409


class IdempotencyMismatchError(FluxRelayError):
    """The same Idempotency-Key was used with a different body."""

    http_status = 422


class QuotaExceededError(FluxRelayError):
    """A per-key rate limit or daily image quota is used up."""

    http_status = 429


# --- upstream (WaveSpeed) errors -----------------------------------------------------------
class UpstreamError(FluxRelayError):
    """Base for failures talking to WaveSpeed."""

    http_status = 502


class UpstreamRejectedError(UpstreamError):
    """WaveSpeed answered 4xx (bad parameters, forbidden): not retryable."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.http_status = status if 400 <= status < 500 else 400


class UpstreamUnauthorizedError(UpstreamError):
    """Our WaveSpeed key is missing or invalid: an operator problem, not the caller's."""

    http_status = 502


class UpstreamRateLimitedError(UpstreamError):
    """WaveSpeed answered 429; `retry_after` carries its hint when it gave one."""

    http_status = 429
    retryable = True


class UpstreamUnavailableError(UpstreamError):
    """Network error, timeout or 5xx on a call that is safe to repeat."""

    http_status = 503
    retryable = True


class AmbiguousSubmitError(UpstreamError):
    """The submit may have reached WaveSpeed (timeout after send, 5xx): the task may exist
    and be billed, so it must never be resent blindly."""

    http_status = 502


class UnknownTaskError(UpstreamError):
    """WaveSpeed does not know the task id (404): expired after 7 days, or never existed."""

    http_status = 404


# --- workflow errors -----------------------------------------------------------------------
class OutputUnavailableError(FluxRelayError):
    """An upstream output could not be fetched (gone, not an image, too large)."""


class JobStateError(FluxRelayError):
    """A conditional write refused a status change (late or duplicate event)."""

    http_status = 409
