"""Per-key rate limits and daily image quotas as atomic DynamoDB counters.

One item per key and window (`RATE#<key id>#<minute>`, `QUOTA#<key id>#<day>`); a conditional
ADD either takes the request or refuses it, so concurrent requests can never overshoot the limit.
Counter items carry `expires_at` so TTL removes them after their window. (Powertools has no
rate limiter; API Gateway usage plans exist only for REST APIs and count requests, not images.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import CONDITION_FAILED, error_code
from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.domain.errors import QuotaExceededError
from fluxrelay.domain.jobs import utcnow


class DynamoLimiter:
    def __init__(self, table_name: str, client: Any | None = None, clock: Any = utcnow) -> None:
        self._table = table_name
        self._client = client or aws_client("dynamodb")
        self._clock = clock

    def take(self, key_id: str, *, images: int, requests_per_minute: int, images_per_day: int) -> None:
        """Count one request and `images` images for the key, or raise QuotaExceededError."""
        now: datetime = self._clock()
        minute = now.replace(second=0, microsecond=0)
        next_minute = minute + timedelta(minutes=1)
        if not self._add(f"RATE#{key_id}#{minute:%Y%m%d%H%M}", 1, requests_per_minute, next_minute):
            raise QuotaExceededError(
                f"rate limit of {requests_per_minute} requests per minute reached for this API key",
                retry_after=max(1.0, (next_minute - now).total_seconds()),
            )
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        next_day = day + timedelta(days=1)
        if not self._add(f"QUOTA#{key_id}#{day:%Y%m%d}", images, images_per_day, next_day):
            raise QuotaExceededError(
                f"daily quota of {images_per_day} images reached for this API key (resets at 00:00 UTC)",
                retry_after=max(1.0, (next_day - now).total_seconds()),
            )

    def _add(self, pk: str, amount: int, limit: int, until: datetime) -> bool:
        if amount > limit:
            return False
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}},
                UpdateExpression="ADD used :n SET expires_at = if_not_exists(expires_at, :ttl)",
                ConditionExpression="attribute_not_exists(used) OR used <= :room",
                ExpressionAttributeValues={
                    ":n": {"N": str(amount)},
                    ":room": {"N": str(limit - amount)},
                    ":ttl": {"N": str(int(until.timestamp()) + 3600)},
                },
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True
