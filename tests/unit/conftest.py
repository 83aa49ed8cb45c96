"""Fixtures for unit tests: the DynamoDB adapters against in-process moto, and the in-memory
world of the domain service tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fluxrelay_local.moto_patches import atomic_dynamodb_requests, plain_attribute_values
from tests.fakes.memory import FixedSecrets, MemoryJobStore, MemorySlots, RecordingWorkflow

TABLE = "fluxrelay-unit-test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves (`clock.now = ...`)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> dict[str, Any]:
    """The in-memory fakes the domain services of one test share, and its clock."""
    clock = Clock()
    return {
        "clock": clock,
        "store": MemoryJobStore(clock=clock),  # writes stamp `updated_at` with the test's time
        "workflow": RecordingWorkflow(),
        "secrets": FixedSecrets(),
        "slots": MemorySlots(),
    }


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A client on a moto table shaped like the template's (hash key `pk`, owner index
    `by_owner`, the sweeper's index `active_jobs`), named `TABLE`."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # moto's conditional writes are not atomic under threads; the local stack's patch makes them so.
    with atomic_dynamodb_requests(), plain_attribute_values(), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("pk", "owner", "created_at", "active")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "active_jobs",
                    "KeySchema": [
                        {"AttributeName": "active", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "by_owner",
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                },
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
