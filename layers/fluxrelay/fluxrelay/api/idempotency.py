"""`Idempotency-Key` on the routes that create jobs, on Powertools idempotency (DynamoDB, the jobs
table).

Records are scoped by owner and key; the request body is the validation payload, so the same key
with another body is refused. A replay returns the stored outcome with `replayed` set, so the API
can answer `Idempotent-Replayed: true`. Outcomes that are safe to retry (429s, an upstream that was
certainly never reached) are not stored: the error propagates and Powertools deletes the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field

from fluxrelay.domain.errors import ConflictError, IdempotencyMismatchError, InvalidRequestError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_KEY_LENGTH = 255


class IdempotentOutcome(BaseModel):
    """What a route stores for its key; `replayed` is never stored, it marks a replay."""

    replayed: bool = Field(False, exclude=True)


Outcome = TypeVar("Outcome", bound=IdempotentOutcome)


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    if isinstance(response, IdempotentOutcome):
        return response.model_copy(update={"replayed": True})
    return response


class Idempotency:
    """Runs a route's work once per (owner, `Idempotency-Key`); one per container.

    Example:
        outcome, headers = container().idempotency.once_per_key(
            event.headers, context, owner, "submit", payload, work, SubmitOutcome
        )
    """

    def __init__(self, table_name: str, ttl_seconds: int, client: DynamoDBClient | None = None) -> None:
        self._table_name = table_name
        self._ttl_seconds = ttl_seconds
        self._client = client
        self._runners: dict[type[IdempotentOutcome], Callable[..., Any]] = {}

    # Powertools' idempotency utility is loaded by the first request that sends a key: a cold
    # start whose request sends none does not pay for its import.
    @cached_property
    def _config(self) -> IdempotencyConfig:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

        return IdempotencyConfig(
            event_key_jmespath="[owner, key]",
            payload_validation_jmespath="payload",
            expires_after_seconds=self._ttl_seconds,
            response_hook=_mark_replay,
        )

    @cached_property
    def _store(self) -> DynamoDBPersistenceLayer:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(
            table_name=self._table_name, key_attr="pk", expiry_attr="expires_at", boto3_client=self._client
        )

    def once_per_key(
        self,
        headers: Mapping[str, str],
        context: LambdaContext | None,
        owner: str,
        route: str,
        payload: dict[str, Any],
        work: Callable[[], Outcome],
        output: type[Outcome],
    ) -> tuple[Outcome, dict[str, str] | None]:
        """Run `work` once per `Idempotency-Key` (when the caller sent one); returns its outcome
        and the response headers that mark a replay."""
        key = headers.get("idempotency-key")
        if key is None:
            return work(), None
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise InvalidRequestError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        if context is not None:
            # Lets Powertools expire an in-progress record when the invocation holding it died.
            self._config.register_lambda_context(context)
        outcome = self.run_once(owner, key, {"route": route, **payload}, work, output)
        return outcome, ({"Idempotent-Replayed": "true"} if outcome.replayed else None)

    def run_once(
        self,
        owner: str,
        key: str,
        payload: dict[str, Any],
        work: Callable[[], Outcome],
        output: type[Outcome],
    ) -> Outcome:
        """Run `work` once per (owner, key); a replay has `replayed` set."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        try:
            outcome: Outcome = self._runner(output)(
                submission={"owner": owner, "key": key, "payload": payload}, work=work
            )
        except IdempotencyValidationError as exc:
            raise IdempotencyMismatchError(
                "this Idempotency-Key was already used with a different request body"
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise ConflictError(
                "a request with this Idempotency-Key is still in progress; retry shortly", retry_after=2
            ) from exc
        return outcome

    def _runner(self, output: type[IdempotentOutcome]) -> Callable[..., Any]:
        if output not in self._runners:
            from aws_lambda_powertools.utilities.idempotency import idempotent_function
            from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import (
                PydanticSerializer,
            )

            @idempotent_function(
                data_keyword_argument="submission",
                persistence_store=self._store,
                config=self._config,
                output_serializer=PydanticSerializer(output),
            )
            def run(submission: dict[str, Any], work: Callable[[], IdempotentOutcome]) -> IdempotentOutcome:
                return work()

            self._runners[output] = run
        return self._runners[output]
