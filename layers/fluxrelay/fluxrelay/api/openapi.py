"""The OpenAPI contract a developer reads: every answer a route really gives, in the envelope.

Routes declare their answers with `responses(...)`, their resource with one of the tags below and
a summary in words; `ContractResolver` adds the bearer scheme (Swagger's Authorize button) and
leaves out the answers this API never gives. `/openapi.json` and `/swagger` show the same document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from fluxrelay.models.wire import ErrorEnvelope

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI
    from aws_lambda_powertools.utilities.typing import LambdaContext

TITLE = "fluxrelay"
VERSION = "1.0.0"
DESCRIPTION = (
    "WaveSpeed's v3 API for `wavespeed-ai/flux-schnell-lora`, with your own API keys, outputs kept "
    "in your bucket, history, cancel and signed webhooks. Every answer is the envelope "
    "`{code, message, data}`; `code` is the HTTP status."
)
BEARER = "apiKey"
# Routes anyone may call (OpenAPI: one empty requirement = no credentials).
PUBLIC: list[dict[str, list[str]]] = [{}]

PREDICTIONS = "Predictions"
HISTORY = "History"
UPLOADS = "Uploads"
WEBHOOKS = "Webhooks"
SERVICE = "Service"
TAGS = {
    PREDICTIONS: "Submit generations, read and cancel them.",
    HISTORY: "Your own predictions, newest first.",
    UPLOADS: "Images to use as img2img sources, and img2img by upload.",
    WEBHOOKS: "Signed job notifications: your signing secret, delivery logs, replays.",
    SERVICE: "Health.",
}
SWAGGER_PATH = "/swagger"

# The header as routes declare it (read by the idempotency layer itself, which also checks it).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes retries safe: the same key and body within 24 h answer the original job "
        "(marked `Idempotent-Replayed: true`) instead of creating another one.",
    ),
]

_ERRORS = {
    400: "Bad input: `message` names each bad field and its rule.",
    401: "Missing, unknown or revoked API key.",
    404: "No such prediction (someone else's prediction is indistinguishable from an unknown id).",
    409: (
        "Conflict: the prediction has already ended (cancel), or a request with the same "
        "Idempotency-Key is still in flight (retry after `Retry-After`)."
    ),
    415: "The body was not sent as `Content-Type: application/json`.",
    422: "The same Idempotency-Key was used before with a different body.",
    429: "A rate limit or quota is used up; nothing was sent upstream. See `Retry-After`.",
    502: "The upstream refused or did not confirm the request.",
    503: "The upstream is unavailable; retry later. See `Retry-After`.",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}


def responses(
    success: type[BaseModel], *errors: int, description: str = "Success."
) -> dict[int, OpenAPIResponse]:
    """The `responses=` of a route: `success` as the 200 answer, and each error status with the
    error envelope."""
    out: dict[int, OpenAPIResponse] = {
        200: {"description": description, "content": {"application/json": {"model": success}}},
    }
    for status in errors:
        answer: OpenAPIResponse = {
            "description": _ERRORS[status],
            "content": {"application/json": {"model": ErrorEnvelope}},
        }
        if status in (409, 429, 503):
            answer["headers"] = _RETRY_AFTER  # type: ignore[typeddict-item]
        out[status] = answer
    return out


class ContractResolver(APIGatewayHttpResolver):
    """The HTTP API resolver whose OpenAPI document (served at /openapi.json and shown by
    /swagger) holds only answers this API gives: Powertools documents a generic 422
    "Validation Error" for every validated route, but this API answers bad input with the 400
    envelope (a 422 is an Idempotency-Key reused with another body, declared where it occurs).

    The document's configuration and the Swagger UI route are set up by the first request for the
    document (or the first call of `get_openapi_schema`): they need Powertools' OpenAPI models,
    whose import was about a fifth of the API function's cold start, and an ordinary API call
    never uses them."""

    _documented = False

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # The Swagger UI route exists once the document is configured.
        if str(event.get("rawPath") or "").rstrip("/").endswith(SWAGGER_PATH):
            self._document()
        return super().resolve(event, context)

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        self._document()
        document = super().get_openapi_schema(*args, **kwargs)
        for path in (document.paths or {}).values():
            for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
                operation = getattr(path, method)
                answers = operation.responses if operation is not None else None
                if answers and "HTTPValidationError" in str(answers.get(422, "")):
                    del answers[422]
        if document.components is not None and document.components.schemas:
            for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
                document.components.schemas.pop(name, None)
        return document

    def _document(self) -> None:
        """Title, resource tags and the bearer scheme of the document; Swagger UI at /swagger,
        where Authorize takes an API key."""
        if self._documented:
            return
        self._documented = True
        from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Tag

        scheme = HTTPBearer(description="Your fluxrelay API key, sent as `Authorization: Bearer fr_...`.")
        document = {
            "title": TITLE,
            "version": VERSION,
            "description": DESCRIPTION,
            "tags": [Tag(name=name, description=text) for name, text in TAGS.items()],
            "security_schemes": {BEARER: scheme},
            "security": [{BEARER: []}],
        }
        self.configure_openapi(**document)  # type: ignore[arg-type]
        self.enable_swagger(path=SWAGGER_PATH, persist_authorization=True, **document)  # type: ignore[arg-type]
