"""Secrets Manager: the WaveSpeed key and each owner's webhook signing secrets.

Reads go through Powertools `parameters` (cached in the warm container for `max_age`), writes
through boto3. An owner's webhook secret is one Secrets Manager secret holding
`{"current": "whsec_…", "previous": "whsec_…" | null, "previous_until": <epoch> | null}`, so a
rotation can keep signing with the old secret for a grace window (Standard Webhooks lets one
header carry several signatures).
"""

from __future__ import annotations

import base64
import json
import re
import secrets as pysecrets
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import LazyClient, error_code

_CACHE_SECONDS = 60
_OWNER_SAFE = re.compile(r"[^A-Za-z0-9/_+=.@-]")


def read_secret(name: str, *, max_age: int = 300) -> str:
    """A plain string secret (the WaveSpeed key), cached per container."""
    return str(parameters.get_secret(name, max_age=max_age))


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()


class SecretsManagerWebhookSecrets:
    """`WebhookSecrets` on Secrets Manager, one secret per owner under `prefix`."""

    def __init__(
        self,
        prefix: str,
        client: Any | None = None,
        clock: Any = time.time,
        *,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        """Give `client`, or `client_factory` to get one at the first write; with neither, a
        default client is made then. Reads go through Powertools parameters (its own client),
        and most submits name no webhook, so most containers never make this one."""
        self._prefix = prefix.rstrip("/") + "/"
        self._lazy_client = LazyClient("secretsmanager", client, client_factory)
        self._clock = clock

    @property
    def _client(self) -> Any:
        return self._lazy_client.made

    def _name(self, owner: str) -> str:
        return self._prefix + _OWNER_SAFE.sub("_", owner)

    def _load(self, owner: str, *, fresh: bool = False) -> dict[str, Any] | None:
        try:
            raw = parameters.get_secret(self._name(owner), max_age=_CACHE_SECONDS, force_fetch=fresh)
        except parameters.exceptions.GetParameterError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) == "ResourceNotFoundException":
                return None
            if "ResourceNotFoundException" in str(exc):
                return None
            raise
        return dict(json.loads(str(raw)))

    def current(self, owner: str) -> str:
        doc = self._load(owner)
        if doc is None:
            doc = self._create(owner)
        return str(doc["current"])

    def signing_secrets(self, owner: str) -> list[str]:
        doc = self._load(owner)
        if doc is None:
            return []
        found = [str(doc["current"])]
        if doc.get("previous") and float(doc.get("previous_until") or 0) > self._clock():
            found.append(str(doc["previous"]))
        return found

    def rotate(self, owner: str, grace_seconds: int) -> dict[str, Any]:
        """Make a new current secret; the old one stays valid (and signed with) for `grace_seconds`."""
        doc = self._load(owner, fresh=True) or self._create(owner)
        rotated = {
            "current": new_webhook_secret(),
            "previous": doc["current"],
            "previous_until": int(self._clock()) + grace_seconds,
        }
        self._client.put_secret_value(SecretId=self._name(owner), SecretString=json.dumps(rotated))
        parameters.get_secret(self._name(owner), max_age=_CACHE_SECONDS, force_fetch=True)
        return rotated

    def _create(self, owner: str) -> dict[str, Any]:
        doc = {"current": new_webhook_secret(), "previous": None, "previous_until": None}
        try:
            self._client.create_secret(Name=self._name(owner), SecretString=json.dumps(doc))
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            # Another request created it first: use theirs.
            return self._load(owner, fresh=True) or doc
        return doc
