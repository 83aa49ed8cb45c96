"""Shared helpers for tests that drive the real application on the local stack."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
from fluxrelay_local.receiver import Delivery, WebhookReceiver  # noqa: F401 - re-exported for tests
from fluxrelay_local.stack import LocalStack, StackConfig
from fluxrelay_local.standin import StandIn

T = TypeVar("T")

# Small but real: Step Functions waits run at 1/1000 of their length, the stand-in takes
# ~20 ms per image, and webhook retries start 1 s (scaled: 1 ms) apart.
DEFAULT_PARAMETERS = {
    "ExpectedSecondsPerImage": "1",
    "PollIntervalSeconds": "1",
    "PollMaxIntervalSeconds": "5",
    "WebhookRetryBaseSeconds": "1",
    "WebhookRetrySpanSeconds": "3600",
}
DEFAULT_STANDIN = {"seconds_per_image": 0.02, "queue_seconds": 0.01}


def start_stack(
    tmp_dir: Any,
    *,
    parameters: dict[str, str] | None = None,
    url_policy: str = "development",
    standin_options: dict[str, Any] | None = None,
    time_scale: float = 0.001,
) -> LocalStack:
    config = StackConfig(
        api_port=0,
        upstream_port=0,
        aws_port=0,
        time_scale=time_scale,
        schedule_seconds=0,  # the sweeper runs only when a test invokes it
        state_dir=tmp_dir / ".local",
        parameter_overrides={**DEFAULT_PARAMETERS, **(parameters or {})},
        url_policy=url_policy,
        standin_options={**DEFAULT_STANDIN, **(standin_options or {})},
    )
    return LocalStack(config).start()


@contextmanager
def function_log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every line the functions' shared Powertools logger writes from here on (INFO and up),
    formatted as a deployed function writes it; yields a function returning them parsed."""
    from fluxrelay.observability import logger

    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in sink.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Api:
    """A caller of the fluxrelay HTTP API with one API key."""

    base_url: str
    key: str | None = field(repr=False)  # kept out of failure reports
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    # How often wait_finished asks; a deployed stack is asked less often than the local one.
    poll_interval: float = 0.05

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**headers, **(extra or {})}

    def submit(
        self, body: dict[str, Any], *, webhook: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        params = {"webhook": webhook} if webhook else None
        return self.http.post(
            f"{self.base_url}/api/v3/wavespeed-ai/flux-schnell-lora",
            json=body,
            params=params,
            headers=self.headers(headers),
        )

    def result(self, job_id: str) -> httpx.Response:
        return self.http.get(f"{self.base_url}/api/v3/predictions/{job_id}/result", headers=self.headers())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(f"{self.base_url}{path}", headers=self.headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(f"{self.base_url}{path}", headers=self.headers(kw.pop("headers", None)), **kw)

    def wait_finished(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            data = self.result(job_id).json()["data"]
            return data if data["status"] in ("completed", "failed", "timeout", "cancelled") else None

        return wait_for(probe, timeout=timeout, interval=self.poll_interval, what=f"job {job_id} to finish")


def api_for(stack: LocalStack, owner: str, **limits: Any) -> Api:
    key, _ = DynamoApiKeyStore(stack.table, client=stack.client("dynamodb")).create(owner, **limits)
    return Api(stack.api_url, key)


def sns_queue(stack: LocalStack) -> AbstractContextManager[Callable[[], list[dict[str, Any]]]]:
    """An SQS queue subscribed to the local stack's job events topic; yields a function that drains it."""
    return topic_queue(stack.client("sqs"), stack.client("sns"), stack.topic_arn)


@contextmanager
def topic_queue(
    sqs: Any, sns: Any, topic_arn: str, filter_policy: dict[str, list[str]] | None = None
) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A new SQS queue subscribed to `topic_arn` (only messages matching `filter_policy`, on
    message attributes), deleted afterwards; yields a function that drains it. The queue policy
    lets the topic deliver, as real SNS requires (moto does not check it)."""
    url = sqs.create_queue(QueueName=f"sns-watch-{time.monotonic_ns()}")["QueueUrl"]
    seen: list[dict[str, Any]] = []

    def drain() -> list[dict[str, Any]]:
        for msg in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            seen.append(json.loads(msg["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
        return seen

    sub = ""
    try:
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
        sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)[
            "SubscriptionArn"
        ]
        yield drain
    finally:
        if sub:
            sns.unsubscribe(SubscriptionArn=sub)
        sqs.delete_queue(QueueUrl=url)


# --------------------------------------------------------------------------- generation helpers
def standin_of(stack: LocalStack) -> StandIn:
    """The stack's in-process WaveSpeed stand-in (`fluxrelay_local.standin.StandIn`): its `faults`,
    `received`, `submissions` and tasks; an error when the stack runs without it."""
    standin = stack.standin
    if standin is None:
        raise AssertionError("this stack runs without the WaveSpeed stand-in")
    return standin


def sns_event(message: dict[str, Any]) -> dict[str, Any]:
    """One job event from an SQS message body of an SNS subscription: the published JSON plus its
    message attributes as plain strings under `attributes` (handles raw delivery too)."""
    if message.get("Type") == "Notification" and "Message" in message:
        event = dict(json.loads(message["Message"]))
        attributes = message.get("MessageAttributes") or {}
        event["attributes"] = {k: v.get("Value") for k, v in attributes.items()}
        return event
    return {**message, "attributes": {}}


def sns_events_for(drain: Callable[[], list[dict[str, Any]]], job_id: str) -> list[dict[str, Any]]:
    """The job events of `job_id` seen so far on an `sns_queue`."""
    return [e for e in map(sns_event, drain()) if e.get("job_id") == job_id]


def end_hanging_job(stack: LocalStack, api: Api, job_id: str) -> dict[str, Any]:
    """Move the job's deadline into the past; the workflow's next check times it out."""
    wait_for(lambda: (job_item(stack, job_id) or {}).get("upstream_id"), what="the upstream id")
    stack.client("dynamodb").update_item(
        TableName=stack.table,
        Key={"pk": {"S": f"JOB#{job_id}"}},
        UpdateExpression="SET deadline_at = :past",
        ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00Z"}},
    )
    return api.wait_finished(job_id)


@contextmanager
def settings_env(**values: str) -> Iterator[None]:
    """Run handlers with changed settings (the process environment, e.g. SYNC_WAIT_SECONDS="1"),
    as a cold start would see them; restores the environment and the caches afterwards."""
    import os

    from fluxrelay.composition import reset

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    reset()
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        reset()


def job_item(stack: LocalStack, job_id: str) -> dict[str, Any] | None:
    """The job's DynamoDB item as plain JSON values (numbers as int/float; None when absent)."""
    from boto3.dynamodb.types import TypeDeserializer

    item = (
        stack.client("dynamodb")
        .get_item(TableName=stack.table, Key={"pk": {"S": f"JOB#{job_id}"}}, ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        return None
    from decimal import Decimal

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        raise TypeError(type(value))

    des = TypeDeserializer()
    data = {k: des.deserialize(v) for k, v in item.items()}
    return dict(json.loads(json.dumps(data, default=plain)))


def wait_endings(stack: LocalStack, execution_arn: str) -> list[str]:
    """How each WaitForResult ended, in order: TaskSucceeded (woken) or TaskTimedOut / TaskFailed."""
    events = stack.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    endings, in_wait = [], False
    for event in events:
        details = event.get("stateEnteredEventDetails") or {}
        if event["type"] == "TaskStateEntered":
            in_wait = details.get("name") == "WaitForResult"
        elif in_wait and event["type"] in {"TaskSucceeded", "TaskTimedOut", "TaskFailed"}:
            endings.append(event["type"])
            in_wait = False
    return endings
