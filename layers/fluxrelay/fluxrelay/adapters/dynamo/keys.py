"""API key store on the single DynamoDB table (pk = KEY#<sha256 of the key>)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from fluxrelay.adapters.aws import CONDITION_FAILED, error_code
from fluxrelay.adapters.aws import client as aws_client
from fluxrelay.apikeys import ApiKeyItem, generate_key, hash_key, key_id
from fluxrelay.domain.errors import NotFoundError


class DynamoApiKeyStore:
    """Creates, looks up and revokes API keys. Only hashes are stored."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or aws_client("dynamodb")

    def create(
        self, owner: str, *, requests_per_minute: int | None = None, images_per_day: int | None = None
    ) -> tuple[str, ApiKeyItem]:
        """Issue a new key for `owner`; the plaintext key is returned once and never stored."""
        key = generate_key()
        item = ApiKeyItem(
            key_hash=hash_key(key),
            key_id=key_id(key),
            owner=owner,
            requests_per_minute=requests_per_minute,
            images_per_day=images_per_day,
        )
        record: dict[str, Any] = {
            "pk": {"S": f"KEY#{item.key_hash}"},
            "key_id": {"S": item.key_id},
            "owner_name": {"S": item.owner},
            "status": {"S": item.status},
            "created_at": {"S": item.created_at.isoformat()},
        }
        if requests_per_minute is not None:
            record["requests_per_minute"] = {"N": str(requests_per_minute)}
        if images_per_day is not None:
            record["images_per_day"] = {"N": str(images_per_day)}
        self._client.put_item(
            TableName=self._table, Item=record, ConditionExpression="attribute_not_exists(pk)"
        )
        return key, item

    def lookup(self, key: str) -> ApiKeyItem | None:
        """The active record for a presented key, or None (unknown or revoked)."""
        digest = hash_key(key)
        found = self._client.get_item(TableName=self._table, Key={"pk": {"S": f"KEY#{digest}"}}).get("Item")
        if not found or found["status"]["S"] != "active":
            return None
        return _item(found)

    def list(self, owner: str | None = None) -> list[ApiKeyItem]:
        """Every key (active and revoked), oldest first; an operator's scan, not a request path."""
        expression, values = "begins_with(pk, :p)", {":p": {"S": "KEY#"}}
        if owner is not None:
            expression += " AND owner_name = :o"
            values[":o"] = {"S": owner}
        items = [
            _item(found)
            for page in self._client.get_paginator("scan").paginate(
                TableName=self._table, FilterExpression=expression, ExpressionAttributeValues=values
            )
            for found in page.get("Items", [])
        ]
        return sorted(items, key=lambda item: item.created_at)

    def revoke(self, key_or_id: str) -> None:
        """Revoke by the plaintext key or by its 12-char key id."""
        pk = f"KEY#{hash_key(key_or_id)}" if key_or_id.startswith("fr_") else self._find_pk_by_id(key_or_id)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}},
                UpdateExpression="SET #s = :revoked",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":revoked": {"S": "revoked"}},
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise NotFoundError("no such API key") from exc
            raise

    def _find_pk_by_id(self, kid: str) -> str:
        # Key ids are a prefix of the hash: a begins_with scan is fine for an operator command.
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": f"KEY#{kid}"}},
            ProjectionExpression="pk",
        ):
            for item in page.get("Items", []):
                return str(item["pk"]["S"])
        raise NotFoundError("no such API key")


def _item(found: dict[str, Any]) -> ApiKeyItem:
    return ApiKeyItem(
        key_hash=found["pk"]["S"].removeprefix("KEY#"),
        key_id=found["key_id"]["S"],
        owner=found["owner_name"]["S"],
        status=found["status"]["S"],
        created_at=datetime.fromisoformat(found["created_at"]["S"]),
        requests_per_minute=_number(found, "requests_per_minute"),
        images_per_day=_number(found, "images_per_day"),
    )


def _number(found: dict[str, Any], name: str) -> int | None:
    return int(found[name]["N"]) if name in found else None
