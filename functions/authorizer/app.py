"""HTTP API Lambda authorizer: resolves `Authorization: Bearer <key>` to the key's owner.

It never denies: an HTTP API can only answer a denial with its own `{"message": ...}` body, and
WaveSpeed clients expect the 401 envelope, which the API function gives when `owner` is empty.
Lookups are cached in the warm container for `AUTHORIZER_CACHE_SECONDS` (the template's
`AuthorizerCacheSeconds`, 60 s by default): a revoked key keeps working for at most that long.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fluxrelay import composition
from fluxrelay.apikeys import ApiKeyItem, hash_key
from fluxrelay.observability import logger

_cache: dict[str, tuple[float, ApiKeyItem | None]] = {}


def _lookup(key: str) -> ApiKeyItem | None:
    digest = hash_key(key)
    now = time.monotonic()
    hit = _cache.get(digest)
    c = composition.container()
    if hit and now - hit[0] < c.settings.authorizer_cache_seconds:
        return hit[1]
    found = c.keys.lookup(key)
    _cache[digest] = (now, found)
    return found


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The headers are read from the event dict itself: Powertools' authorizer event class would
    # import its whole data_classes package (every event source's class) on each cold start.
    key = _bearer({k.lower(): v for k, v in (event.get("headers") or {}).items()})
    if not key:
        return {"isAuthorized": True, "context": {"owner": "", "auth_error": "missing"}}
    record = _lookup(key)
    if record is None:
        logger.info("unknown or revoked API key")
        return {"isAuthorized": True, "context": {"owner": "", "auth_error": "invalid"}}
    context_out: dict[str, Any] = {"owner": record.owner, "key_id": record.key_id}
    if record.requests_per_minute:
        context_out["requests_per_minute"] = record.requests_per_minute
    if record.images_per_day:
        context_out["images_per_day"] = record.images_per_day
    return {"isAuthorized": True, "context": context_out}
