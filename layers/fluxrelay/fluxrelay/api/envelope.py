"""The WaveSpeed envelope every answer is wrapped in, and the one mapping of errors to responses."""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.event_handler import Response

from fluxrelay.domain.errors import FluxRelayError
from fluxrelay.models.wire import error_body, success

JSON = "application/json"


def envelope(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # A dict body: Powertools serialises it and validates it against the route's response model.
    return Response(status_code=status, content_type=JSON, body=success(data), headers=headers)


def error_response(
    status: int, message: str, *, retry_after: float | None = None, headers: dict[str, str] | None = None
) -> Response:
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    # A dict, like `envelope`: a route that returns this has it validated against its response
    # model (Envelope[...] allows `"data": null`); a JSON string would fail that validation.
    return Response(status_code=status, content_type=JSON, body=error_body(status, message), headers=headers)


def from_error(exc: FluxRelayError) -> Response:
    retry_after = exc.retry_after
    if retry_after is None and exc.http_status in (429, 503):
        retry_after = 5
    return error_response(exc.http_status, exc.message, retry_after=retry_after)
