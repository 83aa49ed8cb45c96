"""The global cap on concurrent upstream tasks, as one DynamoDB item holding a string set of
job ids (`SLOTS#upstream`). Acquire adds the job id only while the set is below the cap; release
deletes it. Both are single conditional writes and idempotent per job, so retries are harmless."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import CONDITION_FAILED, error_code
from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.observability import MetricName, count

_KEY = {"pk": {"S": "SLOTS#upstream"}}


class DynamoSlotPool:
    def __init__(self, table_name: str, capacity: int, client: Any | None = None) -> None:
        self._table = table_name
        self._capacity = capacity
        self._client = client or aws_client("dynamodb")

    def acquire(self, job_id: str) -> bool:
        if self._capacity <= 0:
            return True
        try:
            out = self._client.update_item(
                TableName=self._table,
                Key=_KEY,
                UpdateExpression="ADD holders :j",
                ConditionExpression=(
                    "attribute_not_exists(holders) OR size(holders) < :cap OR contains(holders, :id)"
                ),
                ExpressionAttributeValues={
                    ":j": {"SS": [job_id]},
                    ":id": {"S": job_id},
                    ":cap": {"N": str(self._capacity)},
                },
                ReturnValues="UPDATED_NEW",  # the holders after this one: the gauge, at no extra read
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                self._report(self._capacity)
                return False
            raise
        self._report(len(out.get("Attributes", {}).get("holders", {}).get("SS", [])))
        return True

    def _report(self, in_use: int) -> None:
        count(MetricName.UPSTREAM_SLOTS_IN_USE, in_use)
        count(MetricName.UPSTREAM_CONCURRENCY_CAP, self._capacity)

    def holders(self) -> list[str]:
        item = self._client.get_item(TableName=self._table, Key=_KEY, ConsistentRead=True).get("Item", {})
        return list(item.get("holders", {}).get("SS", []))

    def release(self, job_id: str) -> None:
        if self._capacity <= 0:
            return
        self._client.update_item(
            TableName=self._table,
            Key=_KEY,
            UpdateExpression="DELETE holders :j",
            ExpressionAttributeValues={":j": {"SS": [job_id]}},
        )
