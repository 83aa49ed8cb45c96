"""boto3 client construction and ClientError codes, in one place.

Clients are created lazily by the composition root (or by an adapter given none) and injected;
boto3 honours `AWS_ENDPOINT_URL` itself, which is how the local stack points every client at moto.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)

CONDITION_FAILED = "ConditionalCheckFailedException"


def client(service: str, **kwargs: Any) -> Any:
    return boto3.client(service, config=_CONFIG, **kwargs)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ("ConditionalCheckFailedException", "NoSuchKey", ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
