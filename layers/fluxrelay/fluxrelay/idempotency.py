"""`Idempotency-Key` for submits, on Powertools idempotency (DynamoDB, the jobs table).

Records are scoped by owner and key; the request body is the validation payload, so the same key
with another body is refused. A replay returns the stored outcome and is flagged, so the API can
set `Idempotent-Replayed: true`. Outcomes that are safe to retry (429s, an upstream that was
certainly never reached) are not stored: the error propagates and Powertools deletes the record.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay.domain.errors import ConflictError, IdempotencyMismatchError
from fluxrelay.settings import get_settings

MAX_KEY_LENGTH = 255
REPLAY_FLAG = "_replayed"


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    if isinstance(response, dict):
        return {**response, REPLAY_FLAG: True}
    return response


@lru_cache(maxsize=1)
def _config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="[owner, key]",
        payload_validation_jmespath="payload",
        expires_after_seconds=get_settings().idempotency_ttl_seconds,
        response_hook=_mark_replay,
    )


def register_context(context: LambdaContext) -> None:
    """Lets Powertools expire an in-progress record when the invocation that held it died."""
    _config().register_lambda_context(context)


@lru_cache(maxsize=1)
def _runner() -> Callable[..., dict[str, Any]]:
    settings = get_settings()
    store = DynamoDBPersistenceLayer(table_name=settings.table_name, key_attr="pk", expiry_attr="expires_at")

    @idempotent_function(data_keyword_argument="submission", persistence_store=store, config=_config())
    def run(submission: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return work()

    return run


def reset() -> None:
    _config.cache_clear()
    _runner.cache_clear()


def run_once(
    owner: str, key: str, payload: dict[str, Any], work: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """Run `work` once per (owner, key); returns (outcome, replayed)."""
    try:
        outcome = _runner()(submission={"owner": owner, "key": key, "payload": payload}, work=work)
    except IdempotencyValidationError as exc:
        raise IdempotencyMismatchError(
            "this Idempotency-Key was already used with a different request body"
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise ConflictError(
            "a request with this Idempotency-Key is still in progress; retry shortly", retry_after=2
        ) from exc
    replayed = bool(outcome.pop(REPLAY_FLAG, False))
    return outcome, replayed
