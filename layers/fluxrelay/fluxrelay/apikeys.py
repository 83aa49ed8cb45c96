"""API keys: generated once, shown once, stored only as a hash with their owner.

A key looks like `fr_<43 url-safe chars>`; the table holds `KEY#<sha256 hex>`. SHA-256 without a
salt is right here: keys carry 256 bits of randomness, so there is nothing to brute-force, and
the authorizer must find a key by its hash in one GetItem.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

KEY_PREFIX = "fr_"
_OWNER = re.compile(r"[A-Za-z0-9._@-]{1,128}")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """A short, non-secret id for a key (first 12 hex chars of its hash), for logs and revocation."""
    return hash_key(key)[:12]


class InvalidKeyError(ValueError):
    """A key record that cannot be stored (its owner, or a limit below 1)."""


@dataclass(frozen=True)
class ApiKeyItem:
    """The DynamoDB item of an API key (pk = KEY#<hash>).

    A dataclass, not a pydantic model: the authorizer reads one per cold start and needs no
    pydantic for anything else, whose import alone cost it a fifth of boto3's."""

    key_hash: str
    key_id: str
    owner: str
    status: str = "active"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Per-key limits; None = the deployment's defaults.
    requests_per_minute: int | None = None
    images_per_day: int | None = None

    def __post_init__(self) -> None:
        if not _OWNER.fullmatch(self.owner):
            raise InvalidKeyError("owner must be 1..128 letters, digits or . _ @ -")
        for limit in (self.requests_per_minute, self.images_per_day):
            if limit is not None and limit < 1:
                raise InvalidKeyError("a key's limits are at least 1")

    def as_json(self) -> dict[str, Any]:
        # The time as pydantic wrote it when this was a model: RFC 3339 with "Z" for UTC.
        return {**asdict(self), "created_at": self.created_at.isoformat().replace("+00:00", "Z")}
