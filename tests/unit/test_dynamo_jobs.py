"""The DynamoDB job store against moto: what only DynamoDB can get wrong. The cases every job
store must answer alike, the fake included, are the contract suite's (tests/contract)."""

from __future__ import annotations

from typing import Any

import pytest

from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
from fluxrelay.domain.jobs import JobItem, new_job_id
from fluxrelay.models.wire import GenerationRequest
from tests.unit.conftest import TABLE


@pytest.fixture
def store(dynamodb: Any) -> DynamoJobStore:
    return DynamoJobStore(TABLE, client=dynamodb)


def job(**request: Any) -> JobItem:
    body = GenerationRequest.model_validate({"prompt": "a fox", **request}).model_dump(mode="json")
    return JobItem(job_id=new_job_id(), owner="alice", request=body)


def test_a_request_with_numbers_dynamodb_cannot_hold_round_trips(store: DynamoJobStore) -> None:
    # DynamoDB numbers stop at 1E-130; found by schemathesis as a 500 on submit.
    original = job(strength=5.361960653367454e-236, seed=2147483647)
    store.create(original)
    assert store.get(original.job_id).request == original.request
