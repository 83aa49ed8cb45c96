"""`Notifier` on SNS: one message per finished job."""

from __future__ import annotations

from typing import Any

from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.models.notices import JobNotice


class SnsNotifier:
    """Publishes job events; attributes carry status/owner/source for subscription filter policies."""

    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self._topic = topic_arn
        self._client = client or aws_client("sns")

    def publish(self, notice: JobNotice) -> None:
        self._client.publish(
            TopicArn=self._topic,
            Message=notice.model_dump_json(),
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in notice.attributes().items()
            },
        )
