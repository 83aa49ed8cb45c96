"""boto3 client construction and ClientError codes, in one place.

Clients are created lazily by the composition root (or by an adapter given none) and injected;
boto3 honours `AWS_ENDPOINT_URL` itself, which is how the local stack points every client at moto.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)
# Every URL an S3 client presigns is SigV4. botocore still presigns with SigV2 unless told
# otherwise, and S3 refuses SigV2 on buckets created after June 2020 (every bucket this stack
# creates), so output links would answer 403. SigV4 also signs the headers of an upload ticket,
# which is what makes S3 itself refuse a PUT whose Content-Length or Content-Type differs from it.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))

CONDITION_FAILED = "ConditionalCheckFailedException"


def client(service: str, **kwargs: Any) -> Any:
    return boto3.client(service, config=_S3_CONFIG if service == "s3" else _CONFIG, **kwargs)


class LazyClient:
    """An adapter's boto3 client, made at its first call: the client given, else the factory's
    (the composition root's shared one), else a default client of `service`. A task that never
    calls the service never pays for creating its client."""

    def __init__(
        self, service: str, given: Any | None = None, factory: Callable[[], Any] | None = None
    ) -> None:
        self._service = service
        self._given = given
        self._factory = factory

    @cached_property
    def made(self) -> Any:
        if self._given is not None:
            return self._given
        return self._factory() if self._factory is not None else client(self._service)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ("ConditionalCheckFailedException", "NoSuchKey", ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
