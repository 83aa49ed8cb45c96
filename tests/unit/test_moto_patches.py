"""The local stack's speed-ups of moto answer exactly what moto answers without them."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoResult

from fluxrelay_local.moto_patches import plain_attribute_values

ITEM = {
    "pk": {"S": "JOB#1"},
    "text": {"S": "a fox"},
    "empty": {"S": ""},
    "number": {"N": "1.5"},
    "blob": {"B": b"\x00\x01binary"},
    "strings": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2"]},
    "blobs": {"BS": [b"\x01", b"\x02"]},
    "tree": {
        "M": {
            "list": {"L": [{"S": "y"}, {"NULL": True}, {"BOOL": False}, {"M": {}}, {"L": []}, {"B": b"zz"}]},
        }
    },
}


def answers(patched: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The JSON bodies moto sends for item reads and writes, with or without the patch."""
    bodies: list[tuple[str, Any]] = []
    original = DynamoResult.execute_result

    def recorded(self: DynamoResult, context: Any) -> Any:
        status, headers, body = original(self, context)
        bodies.append((context.operation_model.name, json.loads(body)))
        return status, headers, body

    monkeypatch.setattr(DynamoResult, "execute_result", recorded)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with plain_attribute_values() if patched else contextlib.nullcontext(), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        bodies.clear()  # the table description carries its creation time
        client.put_item(TableName="t", Item=ITEM)
        client.put_item(TableName="t", Item=ITEM, ReturnValues="ALL_OLD")
        read = client.get_item(TableName="t", Key={"pk": ITEM["pk"]}, ConsistentRead=True)["Item"]
        client.update_item(
            TableName="t",
            Key={"pk": ITEM["pk"]},
            UpdateExpression="SET #n = :v ADD polls :one",
            ExpressionAttributeNames={"#n": "number"},
            ExpressionAttributeValues={":v": {"N": "2"}, ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        client.scan(TableName="t")
    monkeypatch.setattr(DynamoResult, "execute_result", original)
    assert read == {**ITEM, "blobs": {"BS": [b"\x01", b"\x02"]}}
    return bodies


def test_dynamodb_items_are_answered_as_moto_answers_them(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = answers(False, monkeypatch)
    assert [name for name, _ in plain] == ["PutItem", "PutItem", "GetItem", "UpdateItem", "Scan"]
    assert answers(True, monkeypatch) == plain


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_program() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    from fluxrelay_local.moto_patches import parsed_once

    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    with parsed_once():
        first, tree = AmazonStateLanguageParser.parse(definition)
        second, same_tree = AmazonStateLanguageParser.parse(definition)
        for _ in range(2):  # a broken definition is refused every time, never kept
            with pytest.raises(ASLParserException):
                AmazonStateLanguageParser.parse('{"StartAt": ')
    assert same_tree is tree
    assert second is not first
    assert type(second) is type(first)
    assert AmazonStateLanguageParser.parse(definition)[1] is not tree  # unpatched again
