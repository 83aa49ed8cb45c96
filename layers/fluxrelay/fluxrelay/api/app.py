"""The API resolver: every route, the request reading and every exception handler, in one place.

`create_app()` builds the Powertools resolver with `enable_validation=True`, so the OpenAPI
document comes from the same models that validate, includes one router per resource (each at
the first request for one of its paths, see `fluxrelay.api.routes`), and maps every error to the
WaveSpeed envelope: a caller never sees a stack trace or Powertools' own shapes.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel

from fluxrelay.api import openapi
from fluxrelay.api.bodies import read_bodies_as_json
from fluxrelay.api.envelope import envelope, error_response, from_error
from fluxrelay.api.openapi import ContractResolver
from fluxrelay.api.routes import ROUTERS
from fluxrelay.domain.errors import FluxRelayError
from fluxrelay.models.wire import Envelope, describe_errors
from fluxrelay.observability import logger
from fluxrelay.playground import router as playground_router
from fluxrelay.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI


class Health(BaseModel):
    status: str


class HealthEnvelope(Envelope[Health]):
    pass


def _cors(origins: list[str]) -> CORSConfig | None:
    """CORS for the operator's browser origins; None (no CORS at all) when there are none. With
    it, Powertools answers preflights (OPTIONS) itself and adds the headers to every answer of an
    allowed origin."""
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=origins[1:],
        allow_headers=["Idempotency-Key", "Cancel-After"],  # besides Authorization, Content-Type
        expose_headers=["Retry-After", "Idempotent-Replayed"],
        max_age=600,
    )


class ApiResolver(ContractResolver):
    """The resolver that includes a resource's router at the first request for one of its paths.

    Importing every route module made each cold start build every resource's models (history
    filters, uploads, delivery logs), whichever route it served. A request's path picks the
    modules (`ROUTERS`) before Powertools matches it against the routes; the OpenAPI document
    includes them all. Invocations may share a process's resolver from several threads (the
    local stack does), so a module is included once, under a lock."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending = dict(ROUTERS)
        self._including = threading.Lock()

    def _resolve(self) -> ResponseBuilder:
        # Powertools' own matching step: `current_event.path` is the path it matches (the stage
        # removed), and it has no hook before it.
        path = self.current_event.path
        self._include(lambda patterns: any(fnmatchcase(path, pattern) for pattern in patterns))
        return super()._resolve()

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        self._include(lambda _: True)
        return super().get_openapi_schema(*args, **kwargs)

    def _include(self, wanted: Callable[[tuple[str, ...]], bool]) -> None:
        # `_pending` is replaced, never changed: a thread reading it outside the lock reads a
        # dict that no other thread is changing.
        if not any(wanted(patterns) for patterns in self._pending.values()):
            return
        with self._including:
            pending = dict(self._pending)
            for name, patterns in self._pending.items():
                if wanted(patterns):
                    self.include_router(importlib.import_module(f"fluxrelay.api.routes.{name}").router)
                    del pending[name]
            self._pending = pending


@lru_cache(maxsize=1)
def create_app() -> APIGatewayHttpResolver:
    """The resolver of this process. Built once: the routers are module-level (the Powertools
    way), and a router answers `current_event` through the last resolver that included it."""
    app = ApiResolver(enable_validation=True, cors=_cors(get_settings().cors_allowed_origins))
    read_bodies_as_json(app)
    app.include_router(playground_router)

    @app.get(
        "/health",
        summary="Check that the API answers",
        tags=[openapi.SERVICE],
        security=openapi.PUBLIC,
        responses=openapi.responses(HealthEnvelope),
    )
    def health() -> Response[HealthEnvelope]:
        return envelope(Health(status="ok"))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document() -> Response[dict[str, Any]]:
        return Response(
            status_code=200,
            content_type="application/json",
            # A dict, not the JSON text: the route's response model (a dict) is validated.
            body=json.loads(app.get_openapi_json_schema()),
        )

    _handle_errors(app)
    return app


def _handle_errors(app: APIGatewayHttpResolver) -> None:
    """Every answer is the envelope."""

    @app.exception_handler(RequestValidationError)
    def on_validation_error(exc: RequestValidationError) -> Response:
        return error_response(400, describe_errors(exc.errors()))

    @app.exception_handler(RequestUnsupportedContentType)
    def on_unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
        # A body sent as text/plain, form data, ...: the caller's mistake, not a 500.
        return error_response(415, "send the request body as JSON with 'Content-Type: application/json'")

    @app.exception_handler(UnicodeDecodeError)
    def on_undecodable_body(_: UnicodeDecodeError) -> Response:
        # Powertools decodes the body as UTF-8 before parsing it as JSON.
        return error_response(400, "the body must be UTF-8 encoded JSON")

    @app.exception_handler(ValueError)
    def on_value_error(exc: ValueError) -> Response:
        # Powertools' multipart parser raises a bare ValueError for a malformed multipart body
        # (e.g. no boundary): the caller's mistake. Any other ValueError is ours: the generic 500.
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        if frame is not None and frame.tb_frame.f_code.co_name.startswith("_parse_multipart"):
            return error_response(400, f"the multipart body could not be read: {exc}")
        return on_unexpected(exc)

    @app.exception_handler(FluxRelayError)
    def on_domain_error(exc: FluxRelayError) -> Response:
        log = logger.warning if exc.http_status >= 500 else logger.info
        log("request refused", extra={"error_type": type(exc).__name__, "status": exc.http_status})
        return from_error(exc)

    @app.not_found
    def on_not_found(_: RouteNotFound) -> Response:
        return error_response(404, "no such route")

    @app.exception_handler(Exception)
    def on_unexpected(exc: Exception) -> Response:
        # A true boundary: whatever went wrong, the caller gets the envelope, never a stack trace.
        logger.exception("unhandled error")
        return error_response(500, "internal error; the request was not completed")
