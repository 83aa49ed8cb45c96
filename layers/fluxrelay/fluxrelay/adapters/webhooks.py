"""Outgoing webhooks, signed per Standard Webhooks and posted through the SSRF guard."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from fluxrelay.adapters.urlguard.rules import UrlPolicy
from fluxrelay.adapters.urlguard.transport import safe_request
from fluxrelay.models.predictions import Prediction


def sign(secrets: list[str], message_id: str, timestamp: datetime, body: str) -> str:
    """`webhook-signature` value: one `v1,<base64>` per secret, space-separated (rotation)."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets)


class StandardWebhookSender:
    """`WebhookSender`: POST JSON with webhook-id/-timestamp/-signature; no redirects followed."""

    def __init__(self, policy: UrlPolicy, timeout: float = 10.0) -> None:
        self._policy = policy
        self._timeout = timeout

    def deliver(self, url: str, payload: Prediction, secrets: list[str], message_id: str) -> int:
        data = payload.model_dump(mode="json", by_alias=True, exclude_none=True)
        body = json.dumps(data, separators=(",", ":"))
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "fluxrelay-webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(secrets, message_id, now, body),
        }
        response = safe_request(
            "POST",
            url,
            self._policy,
            content=body.encode(),
            headers=headers,
            timeout=self._timeout,
            max_bytes=64 * 1024,
        )
        return int(response.status_code)
