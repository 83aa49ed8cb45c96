"""API keys: generated once, shown once, stored only as a hash with their owner.

A key looks like `fr_<43 url-safe chars>`; the table holds `KEY#<sha256 hex>`. SHA-256 without a
salt is right here: keys carry 256 bits of randomness, so there is nothing to brute-force, and
the authorizer must find a key by its hash in one GetItem.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, Field

KEY_PREFIX = "fr_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """A short, non-secret id for a key (first 12 hex chars of its hash), for logs and revocation."""
    return hash_key(key)[:12]


class ApiKeyItem(BaseModel):
    """The DynamoDB item of an API key (pk = KEY#<hash>)."""

    key_hash: str
    key_id: str
    owner: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")
    status: str = "active"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Per-key limits; None = the deployment's defaults.
    requests_per_minute: int | None = Field(None, ge=1)
    images_per_day: int | None = Field(None, ge=1)
