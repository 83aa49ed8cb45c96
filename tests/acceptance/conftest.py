"""Fixtures of the black-box acceptance suite: one stack (`target`), callers with their own
temporary API keys, a webhook receiver and one shared finished job.

The tests use only what a user or an operator has: the public API, the stack's outputs, API keys
and a webhook receiver; never the handlers, DynamoDB or the WaveSpeed stand-in's internals. So
the same tests accept the local stack in CI and a deployed stack after `make deploy`. How to run
them and how to add one: README.md beside this file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fluxrelay_local.receiver import WebhookReceiver
from tests.acceptance.checks import BODY, JOB_TIMEOUT, Caller, FinishedJob, Hooks
from tests.acceptance.target import Target, TargetError, target_from_env
from tests.support.stack import topic_queue

DEFAULT_RECEIVER_PORT = 8765


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get("ACCEPTANCE_STACK"):
        return f"acceptance target: deployed stack {os.environ['ACCEPTANCE_STACK']}"
    if os.environ.get("ACCEPTANCE_STACK_JSON"):
        return f"acceptance target: the local stack of {os.environ['ACCEPTANCE_STACK_JSON']}, if running"
    return "acceptance target: a local stack started for this run"


_TARGET = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with contextlib.ExitStack() as cleanup:
        try:
            chosen = cleanup.enter_context(target_from_env(tmp_path_factory.mktemp("acceptance")))
        except TargetError as exc:
            problem = str(exc)  # reported below, outside the handler: a message, not a traceback
        else:
            request.config.stash[_TARGET] = chosen.description
            yield chosen
            return
    pytest.fail(f"no stack to accept: {problem}", pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if _TARGET in config.stash:
        terminalreporter.write_line(f"acceptance target was {config.stash[_TARGET]}")


@pytest.fixture(scope="session")
def stack() -> None:
    """The in-process stack of the other suites is out of bounds here: use `target`."""
    raise pytest.UsageError("acceptance tests see the stack only through `target` and the public API")


@pytest.fixture(scope="session")
def new_api(target: Target) -> Callable[..., Caller]:
    """`new_api(role)`: a caller with a new owner and a temporary API key (revoked at the end of
    the run). `new_api(role, fresh=False)` reuses the owner `acceptance-<role>` across runs."""

    def make(role: str, *, fresh: bool = True) -> Caller:
        owner = target.new_owner(role) if fresh else f"acceptance-{role}"
        interval = 1.0 if target.deployed else 0.2
        return Caller(target.api_url, target.keys.create(owner), poll_interval=interval, owner=owner)

    return make


@pytest.fixture(scope="session")
def alice(new_api: Callable[..., Caller]) -> Caller:
    return new_api("alice")


@pytest.fixture(scope="session")
def bob(new_api: Callable[..., Caller]) -> Caller:
    return new_api("bob")


@pytest.fixture(scope="session")
def webhook_caller(new_api: Callable[..., Caller]) -> Caller:
    """The owner of webhook jobs. Each owner's signing secret is a Secrets Manager secret, billed
    per month on a deployed stack: one owner for every run keeps that to one secret."""
    return new_api("webhooks", fresh=False)


@pytest.fixture(scope="session")
def hooks(target: Target) -> Iterator[Hooks]:
    """Locally a receiver on loopback. A deployed stack posts only to public https URLs: give
    WEBHOOK_RECEIVER_URL, a public URL that forwards to this machine's WEBHOOK_RECEIVER_PORT
    (default 8765; e.g. `cloudflared tunnel --url http://127.0.0.1:8765`)."""
    public_url = os.environ.get("WEBHOOK_RECEIVER_URL")
    if public_url:
        port = int(os.environ.get("WEBHOOK_RECEIVER_PORT") or DEFAULT_RECEIVER_PORT)
        with WebhookReceiver(port=port) as receiver:
            yield Hooks(receiver, public_url)
    elif target.url_policy == "strict":
        pytest.skip(
            f"{target.description} delivers webhooks only to public https URLs: set WEBHOOK_RECEIVER_URL "
            f"to one that forwards to 127.0.0.1:$WEBHOOK_RECEIVER_PORT (default {DEFAULT_RECEIVER_PORT})"
        )
    else:
        with WebhookReceiver() as receiver:
            yield Hooks(receiver, receiver.url)


@pytest.fixture(scope="session")
def alice_events(target: Target, alice: Caller) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Alice's job events on the stack's topic: a new SQS queue subscribed with a filter on her
    owner id (deleted at the end). Subscribed before `finished_job` is submitted."""
    sqs, sns = target.client("sqs"), target.client("sns")
    with topic_queue(sqs, sns, target.topic_arn, {"owner": [alice.owner]}) as drain:
        yield drain


@pytest.fixture(scope="session")
def finished_job(alice: Caller, alice_events: Callable[[], list[dict[str, Any]]]) -> FinishedJob:
    """One plain job of alice's, submitted with an Idempotency-Key and finished (one image)."""
    key = f"acceptance-{uuid.uuid4()}"
    response = alice.submit(BODY, headers={"Idempotency-Key": key})
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["id"]
    return FinishedJob(job_id, BODY, key, alice.wait_finished(job_id, timeout=JOB_TIMEOUT))
