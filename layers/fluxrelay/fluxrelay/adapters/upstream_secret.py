"""The WaveSpeed account's webhook signing secret, with which it signs the webhooks it sends us.

Read from Secrets Manager when the operator stored it there (`WAVESPEED_WEBHOOK_SECRET_NAME`),
otherwise from WaveSpeed's own `GET /api/v3/webhook/secret`; either way cached in the warm
container by Powertools `parameters` (a custom provider gives the upstream call the same cache).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parameters import BaseProvider

from fluxrelay.adapters.secrets import read_secret

_CACHE_KEY = "wavespeed-webhook-secret"


class _UpstreamSecretProvider(BaseProvider):
    def __init__(self, fetch: Callable[[], str]) -> None:
        super().__init__()
        self._fetch = fetch

    def _get(self, name: str, **sdk_options: Any) -> str:
        return self._fetch()

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError("one secret only")


class WaveSpeedWebhookSecret:
    """Callable returning the secret; `max_age` seconds of caching."""

    def __init__(
        self, fetch_from_upstream: Callable[[], str], secret_name: str = "", max_age: int = 300
    ) -> None:
        self._secret_name = secret_name
        self._max_age = max_age
        self._provider = _UpstreamSecretProvider(fetch_from_upstream)

    def __call__(self) -> str:
        if self._secret_name:
            return read_secret(self._secret_name, max_age=self._max_age)
        return str(self._provider.get(_CACHE_KEY, max_age=self._max_age))
