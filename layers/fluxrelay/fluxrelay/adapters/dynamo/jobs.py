"""Job store on the single DynamoDB table (pk = JOB#<job id>).

Items are the JSON form of `JobItem`, converted attribute by attribute (floats as Decimal), so
`status`, `owner` and `created_at` are plain top-level attributes: the GSI `by_owner` and the
conditional status writes use them directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Unpack

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, TypeAdapter

from fluxrelay.adapters.aws import CONDITION_FAILED, error_code
from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.domain.errors import ConflictError, NotFoundError
from fluxrelay.domain.jobs import (
    TERMINAL,
    JobFields,
    JobItem,
    JobStatus,
    WebhookState,
    allowed_sources,
    utcnow,
)
from fluxrelay.domain.ports import JobFilter, JobPage, JobPosition
from fluxrelay.domain.usage import JobUsage
from fluxrelay.models.types import UtcDatetime

OWNER_INDEX = "by_owner"  # hash key owner, range key created_at (the template's GSI)
# Index bounds in the exact text form `created_at` is stored in.
_STORED_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
_TERMINAL_VALUES = {f":ended{i}": status for i, status in enumerate(sorted(TERMINAL))}
_TERMINAL_ATTRS = {name: {"S": status.value} for name, status in _TERMINAL_VALUES.items()}
# The sparse index of active jobs (what the sweeper reads): its key attribute is written with the
# job and removed only once the job has been notified (`mark_notified`), not when it turns
# terminal, so a job whose workflow dies between its end and its Notify is still found.
ACTIVE_INDEX = "active_jobs"
_ACTIVE = "active"
_RESUME_FROM_ZERO = "attribute_exists(pk) AND (attribute_not_exists(resumes) OR resumes = :seen)"

_SER = TypeSerializer()
_DES = TypeDeserializer()


# Stored as JSON text: the caller's request may hold numbers DynamoDB cannot represent (its
# numbers stop at 1E-130; a strength of 1e-236 is still a valid float).
_JSON_TEXT_FIELDS = frozenset({"request"})


def _field_attr(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if name in _JSON_TEXT_FIELDS:
        return {"S": json.dumps(value)}
    return _to_attr(value)


def _to_attr(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    # A JSON round trip turns datetimes/enums into strings and floats into Decimal.
    plain = json.loads(json.dumps(value, default=str), parse_float=Decimal)
    return _SER.serialize(plain)


# The usage counters are top-level attributes (usage_<counter>): DynamoDB's ADD creates a missing
# number attribute, but not one inside a map that an older item does not have.
_USAGE_PREFIX = "usage_"


def _from_item(item: dict[str, Any]) -> JobItem:
    data = {k: _DES.deserialize(v) for k, v in item.items() if k not in ("pk", _ACTIVE)}
    counters = [k for k in data if k.startswith(_USAGE_PREFIX)]
    data["usage"] = {k.removeprefix(_USAGE_PREFIX): data.pop(k) for k in counters}
    for name in _JSON_TEXT_FIELDS & data.keys():
        if isinstance(data[name], str):
            data[name] = json.loads(data[name])
    return JobItem.model_validate(json.loads(json.dumps(data, default=_decimal)))


def _position(key: dict[str, Any]) -> JobPosition:
    """Where the index read ended: an item or a LastEvaluatedKey (both carry the index key)."""
    return JobPosition(created_at=key["created_at"]["S"], job_id=key["pk"]["S"].removeprefix("JOB#"))


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value))


class DynamoJobStore:
    """`JobStore` on DynamoDB; status changes are ConditionExpressions on `status`."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or aws_client("dynamodb")

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"JOB#{job_id}"}}

    def _update_if(
        self, job_id: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> JobItem | None:
        """One conditional UpdateItem: the job as written, or None when `condition` does not hold."""
        try:
            out = self._client.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return None
            raise
        return _from_item(out["Attributes"])

    def create(self, job: JobItem) -> None:
        item = {"pk": {"S": f"JOB#{job.job_id}"}}
        for name, value in job.model_dump(mode="json", exclude={"usage"}).items():
            if value is not None:
                item[name] = _field_attr(name, value)
        for name, value in job.usage.nonzero().items():
            item[_USAGE_PREFIX + name] = {"N": str(value)}
        item[_ACTIVE] = {"S": "1"}  # even a job recorded as failed still has its Notify to run
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise ConflictError(f"job {job.job_id} exists already") from exc
            raise

    def get(self, job_id: str) -> JobItem | None:
        item = self._client.get_item(TableName=self._table, Key=self._key(job_id), ConsistentRead=True).get(
            "Item"
        )
        return _from_item(item) if item else None

    def transition(self, job_id: str, to: JobStatus, **fields: Unpack[JobFields]) -> JobItem | None:
        sources = sorted(s.value for s in allowed_sources(to))
        if not sources:
            return None
        names, values, sets = self._updates({"status": to, **fields})
        names["#status"] = "status"
        placeholders = []
        for i, source in enumerate(sources):
            values[f":from{i}"] = {"S": source}
            placeholders.append(f":from{i}")
        return self._update_if(
            job_id,
            "SET " + ", ".join(sets),
            f"attribute_exists(pk) AND #status IN ({', '.join(placeholders)})",
            names,
            values,
        )

    def mark_notified(self, job_id: str) -> bool:
        names = {"#active": _ACTIVE, "#status": "status"}
        ended = f"#status IN ({', '.join(_TERMINAL_VALUES)})"  # also false for an unknown job
        return self._update_if(job_id, "REMOVE #active", ended, names, _TERMINAL_ATTRS) is not None

    def update(self, job_id: str, **fields: Unpack[JobFields]) -> JobItem:
        names, values, sets = self._updates(fields)
        job = self._update_if(job_id, "SET " + ", ".join(sets), "attribute_exists(pk)", names, values)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def update_webhook(self, job_id: str, webhook: WebhookState, *, expected_attempts: int) -> JobItem | None:
        names, values, sets = self._updates({"webhook": webhook})
        names.update({"#hook": "webhook", "#attempts": "attempts"})
        values[":expected"] = {"N": str(expected_attempts)}
        return self._update_if(job_id, "SET " + ", ".join(sets), "#hook.#attempts = :expected", names, values)

    def claim(self, job_id: str, field: Literal["dispatched_at"], value: datetime) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression="SET #f = :v",
                # A marker cleared back to NULL counts as unset; a job that has ended (e.g.
                # cancelled) takes no marker, so nothing can be sent for it afterwards.
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(#f) OR attribute_type(#f, :null))"
                    f" AND NOT (#status IN ({', '.join(_TERMINAL_VALUES)}))"
                ),
                ExpressionAttributeNames={"#f": field, "#status": "status"},
                ExpressionAttributeValues={
                    ":v": _to_attr(value),
                    ":null": {"S": "NULL"},
                    **_TERMINAL_ATTRS,
                },
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    def add_usage(self, job_id: str, usage: JobUsage) -> JobItem | None:
        counters = usage.nonzero()
        if not counters:
            return self.get(job_id)
        names = {f"#u{i}": _USAGE_PREFIX + name for i, name in enumerate(counters)}
        values = {f":u{i}": {"N": str(value)} for i, value in enumerate(counters.values())}
        add = "ADD " + ", ".join(f"#u{i} :u{i}" for i in range(len(counters)))
        # attribute_exists: never a stub item for an unknown id
        return self._update_if(job_id, add, "attribute_exists(pk)", names, values)

    # --- the owner index ---------------------------------------------------------------
    # How many index reads one page may take when a filter skips most jobs; then the page
    # ends early with a position to go on from.
    _MAX_READS_PER_PAGE = 5

    def owned_page(self, owner: str, wanted: JobFilter, *, limit: int, after: JobPosition | None) -> JobPage:
        if wanted.statuses is not None and not wanted.statuses:
            return JobPage([], None)  # no status wanted: DynamoDB has no empty `IN ()`
        query = self._owner_query(owner, wanted)
        start = None
        if after is not None:
            start = {
                "pk": {"S": f"JOB#{after.job_id}"},
                "owner": {"S": owner},  # the caller's owner, whatever the position says
                "created_at": {"S": after.created_at},
            }
        found: list[dict[str, Any]] = []
        for _ in range(self._MAX_READS_PER_PAGE):
            # One more than asked for: then a full page knows whether another one follows.
            page = self._client.query(
                **query, Limit=limit + 1 - len(found), **({"ExclusiveStartKey": start} if start else {})
            )
            found.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if len(found) > limit or start is None:
                break
        if len(found) > limit:
            found = found[:limit]
            return JobPage([_from_item(i) for i in found], _position(found[-1]))
        return JobPage([_from_item(i) for i in found], _position(start) if start else None)

    def count_owned(self, owner: str, wanted: JobFilter) -> int:
        if wanted.statuses is not None and not wanted.statuses:
            return 0
        query = self._owner_query(owner, wanted)
        pages = self._client.get_paginator("query").paginate(**query, Select="COUNT")
        return sum(int(page["Count"]) for page in pages)

    def _owner_query(self, owner: str, wanted: JobFilter) -> dict[str, Any]:
        names = {"#owner": "owner"}
        values: dict[str, Any] = {":owner": {"S": owner}}
        key = "#owner = :owner"
        low, high = wanted.created_after, wanted.created_before
        if low or high:
            names["#created"] = "created_at"
        if low and high:
            key += " AND #created BETWEEN :low AND :high"
        elif low:
            key += " AND #created >= :low"
        elif high:
            key += " AND #created <= :high"
        if low:
            values[":low"] = {"S": _STORED_TIME.dump_python(low, mode="json")}
        if high:
            values[":high"] = {"S": _STORED_TIME.dump_python(high, mode="json")}
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": key,
            "ScanIndexForward": False,  # newest first
        }
        if wanted.statuses is not None:
            names["#status"] = "status"
            placeholders = []
            for i, status in enumerate(sorted(wanted.statuses)):
                values[f":s{i}"] = {"S": status.value}
                placeholders.append(f":s{i}")
            query["FilterExpression"] = f"#status IN ({', '.join(placeholders)})"
        return {**query, "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}

    def claim_resume(self, job_id: str, seen: int) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression="SET resumes = :next",
                # Items written before the counter existed have none: that counts as 0.
                ConditionExpression=_RESUME_FROM_ZERO if seen == 0 else "resumes = :seen",
                ExpressionAttributeValues={":next": {"N": str(seen + 1)}, ":seen": {"N": str(seen)}},
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    def active(self, limit: int) -> list[str]:
        out = self._client.query(
            TableName=self._table,
            IndexName=ACTIVE_INDEX,
            KeyConditionExpression="#a = :one",
            ExpressionAttributeNames={"#a": _ACTIVE},
            ExpressionAttributeValues={":one": {"S": "1"}},
            Limit=limit,
        )
        return [item["pk"]["S"].removeprefix("JOB#") for item in out.get("Items", [])]

    @staticmethod
    def _updates(fields: Mapping[str, object]) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        for i, (name, value) in enumerate({"updated_at": utcnow(), **fields}.items()):
            names[f"#f{i}"] = name
            values[f":v{i}"] = _field_attr(name, value)
            sets.append(f"#f{i} = :v{i}")
        return names, values, sets
