"""Outgoing webhook signatures (Standard Webhooks) and secret rotation.

During a rotation's grace window every delivery carries one `v1,` signature per valid secret,
so a receiver verifying with EITHER the old or the new secret accepts it; after the window only
the new secret signs (and only it verifies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fluxrelay.adapters.secrets import SecretsManagerWebhookSecrets, new_webhook_secret
from fluxrelay.adapters.urlguard.rules import UrlPolicy
from fluxrelay.adapters.webhooks import StandardWebhookSender, sign
from fluxrelay.models.wire import Prediction, PredictionUrls
from tests.support.stack import WebhookReceiver

PREFIX = "fluxrelay-test/webhook/"
BODY = json.dumps({"id": "0" * 32, "status": "completed"}, separators=(",", ":"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def headers_for(signature: str, message_id: str, when: datetime) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def verifies(secret: str, body: str | bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def secrets_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SecretsManagerWebhookSecrets, Clock]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    parameters.clear_caches()
    clock = Clock()
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        yield SecretsManagerWebhookSecrets(PREFIX, client=client, clock=clock), clock
    parameters.clear_caches()


def test_one_signature_per_secret_and_each_secret_verifies() -> None:
    old, new, stranger = new_webhook_secret(), new_webhook_secret(), new_webhook_secret()
    now = datetime.now(UTC)
    signature = sign([new, old], "msg_1", now, BODY)

    parts = signature.split(" ")
    assert len(parts) == 2
    assert all(part.startswith("v1,") for part in parts)
    headers = headers_for(signature, "msg_1", now)
    assert verifies(new, BODY, headers)
    assert verifies(old, BODY, headers)
    assert not verifies(stranger, BODY, headers)
    assert not verifies(new, BODY.replace("completed", "failed"), headers)


def test_secrets_are_whsec_and_per_owner(secrets_store: tuple[SecretsManagerWebhookSecrets, Clock]) -> None:
    store, _ = secrets_store
    alice, bob = store.current("alice"), store.current("bob")

    assert alice.startswith("whsec_")
    assert bob.startswith("whsec_")
    assert alice != bob
    assert store.current("alice") == alice  # stable once created
    assert store.signing_secrets("alice") == [alice]


def test_rotation_signs_with_both_during_the_grace_window_then_only_the_new(
    secrets_store: tuple[SecretsManagerWebhookSecrets, Clock],
) -> None:
    store, clock = secrets_store
    old = store.current("alice")

    rotated = store.rotate("alice", grace_seconds=3600)
    new = rotated["current"]
    assert new != old
    assert rotated["previous"] == old
    assert rotated["previous_until"] == int(clock.now) + 3600
    assert store.current("alice") == new

    # During the window: two signatures, and a receiver holding either secret accepts.
    during = store.signing_secrets("alice")
    assert during == [new, old]
    now = datetime.now(UTC)
    headers = headers_for(sign(during, "msg_2", now, BODY), "msg_2", now)
    assert headers["webhook-signature"].count("v1,") == 2
    assert verifies(old, BODY, headers)
    assert verifies(new, BODY, headers)

    # After it: only the new secret signs; the old one no longer verifies.
    clock.now += 3601
    after = store.signing_secrets("alice")
    assert after == [new]
    headers = headers_for(sign(after, "msg_3", now, BODY), "msg_3", now)
    assert headers["webhook-signature"].count("v1,") == 1
    assert verifies(new, BODY, headers)
    assert not verifies(old, BODY, headers)


def test_rotation_of_one_owner_leaves_the_others_alone(
    secrets_store: tuple[SecretsManagerWebhookSecrets, Clock],
) -> None:
    store, _ = secrets_store
    bob = store.current("bob")
    store.current("alice")
    store.rotate("alice", grace_seconds=60)
    assert store.signing_secrets("bob") == [bob]


def test_a_delivery_during_rotation_carries_both_signatures_over_http(
    secrets_store: tuple[SecretsManagerWebhookSecrets, Clock],
) -> None:
    store, _ = secrets_store
    old = store.current("alice")
    new = store.rotate("alice", grace_seconds=3600)["current"]
    prediction = Prediction(
        id="1" * 32,
        outputs=[],
        urls=PredictionUrls(get="https://api.example/r"),
        status="completed",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    payload = prediction.model_dump(mode="json", by_alias=True, exclude_none=True)

    with WebhookReceiver() as receiver:
        status = StandardWebhookSender(UrlPolicy.development(), timeout=5).deliver(
            receiver.url, prediction, store.signing_secrets("alice"), "msg_http"
        )
        (delivery,) = receiver.wait(1, timeout=5)

    assert status == 200
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["webhook-id"] == "msg_http"
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(old).verify(delivery.body, headers) == payload
    assert Webhook(new).verify(delivery.body, headers) == payload
