"""The local stack's speed-ups of moto answer exactly what moto answers without them."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
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


def _create_table(client: Any, name: str) -> None:
    """A table keyed by a string `pk`, as the stack's tables are."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


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
        _create_table(client, "t")
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


def test_a_response_class_lists_the_same_method_names_once() -> None:
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler

    from fluxrelay_local.moto_patches import cached_service_lookup

    listed = responses.method_names_from_class(DynamoHandler)
    with cached_service_lookup():
        first = responses.method_names_from_class(DynamoHandler)
        assert responses.method_names_from_class(DynamoHandler) is first
    assert first == listed
    assert "update_item" in first
    assert responses.method_names_from_class(DynamoHandler) is not listed  # unpatched again


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


def test_a_dynamodb_read_sent_during_a_write_sees_the_item_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    from fluxrelay_local.moto_patches import atomic_dynamodb_requests

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with atomic_dynamodb_requests(), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_table(client, "t")
        client.put_item(TableName="t", Item={"pk": {"S": "1"}, "n": {"N": "1"}})
        writing, release = threading.Event(), threading.Event()
        original = DynamoDBBackend.update_item

        def held(self: Any, *args: Any, **kwargs: Any) -> Any:
            writing.set()
            release.wait(10)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, "update_item", held)
        writer = threading.Thread(
            target=client.update_item,
            kwargs={
                "TableName": "t",
                "Key": {"pk": {"S": "1"}},
                "UpdateExpression": "SET n = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            },
        )
        writer.start()
        assert writing.wait(10)
        read: dict[str, Any] = {}
        reader = threading.Thread(
            target=lambda: read.update(client.get_item(TableName="t", Key={"pk": {"S": "1"}}))
        )
        reader.start()
        reader.join(0.3)  # unpatched, the read answers the old item meanwhile
        release.set()
        writer.join(10)
        reader.join(10)
    assert read["Item"]["n"] == {"N": "2"}


def _aws_calls(client: Callable[[str], Any], name: str) -> dict[str, Any]:
    """What a handler's kind of S3 and DynamoDB calls answer (names left out, so runs compare)."""
    s3, ddb = client("s3"), client("dynamodb")
    s3.create_bucket(Bucket=name)
    key = "outputs/a b+ü%20.jpeg"
    s3.put_object(Bucket=name, Key=key, Body=b"\xff\xd8 image", ContentType="image/jpeg", Metadata={"w": "2"})
    got = s3.get_object(Bucket=name, Key=key)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=name, Key="nothing")
    _create_table(ddb, name)
    ddb.put_item(TableName=name, Item={"pk": {"S": "1"}, "b": {"B": b"\x00"}})
    with pytest.raises(ClientError) as refused:
        ddb.put_item(TableName=name, Item={"pk": {"S": "1"}}, ConditionExpression="attribute_not_exists(pk)")
    return {
        "body": got["Body"].read(),
        "object": {k: got[k] for k in ("ContentType", "ContentLength", "Metadata", "ETag")},
        "keys": [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]],
        "missing": missing.value.response["Error"]["Code"],
        "refused": refused.value.response["Error"]["Code"],
        "item": ddb.get_item(TableName=name, Key={"pk": {"S": "1"}}, ConsistentRead=True)["Item"],
    }


def test_in_process_requests_answer_as_the_server_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.config import Config
    from moto.moto_api._internal.models import moto_api_backend
    from moto.server import ThreadedMotoServer

    from fluxrelay_local.moto_patches import in_process_requests

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"

        def client(service: str) -> Any:
            return boto3.client(service, region_name="us-east-1", endpoint_url=url)

        over_the_socket = _aws_calls(client, "socket")
    finally:
        server.stop()
    wsgi = server._server
    assert wsgi is not None
    wsgi.server_close()
    app = wsgi.app
    try:
        with in_process_requests(app, (url,)):  # nothing listens on `url` any more
            in_process = _aws_calls(client, "inprocess")
    finally:
        moto_api_backend.reset()
    assert in_process == over_the_socket
    once = Config(retries={"total_max_attempts": 1})
    with pytest.raises(EndpointConnectionError):  # clients made after the block use the socket again
        boto3.client("s3", region_name="us-east-1", endpoint_url=url, config=once).list_buckets()
