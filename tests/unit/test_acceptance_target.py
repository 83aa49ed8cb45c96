"""How the acceptance suite finds its stack. Deployed mode against moto's CloudFormation: it reads
the stack's outputs, issues temporary API keys into the stack's table and revokes them
afterwards, and says clearly what is wrong with a stack it cannot use. Local mode: a running
stack is used only if its API answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
from fluxrelay_local.deploy import load_template
from tests.acceptance.target import (
    REQUIRED_OUTPUTS,
    TargetError,
    deployed_target,
    running_state,
    target_from_env,
)

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"

# The resources and outputs the suite reads, shaped like template.yaml's.
TEMPLATE = {
    "Resources": {
        "JobsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            },
        },
        "MediaBucket": {"Type": "AWS::S3::Bucket"},
        "JobEventsTopic": {"Type": "AWS::SNS::Topic"},
    },
    "Outputs": {
        "ApiUrl": {"Value": API_URL + "/"},
        "TableName": {"Value": {"Ref": "JobsTable"}},
        "BucketName": {"Value": {"Ref": "MediaBucket"}},
        "TopicArn": {"Value": {"Ref": "JobEventsTopic"}},
    },
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process; yields a CloudFormation client in REGION."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def create_stack(cloudformation: Any, name: str, template: dict[str, Any]) -> None:
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_the_outputs_the_suite_reads_are_outputs_of_template_yaml() -> None:
    outputs = load_template(ROOT / "template.yaml")["Outputs"]

    assert set(REQUIRED_OUTPUTS) <= set(outputs)


def test_a_deployed_stack_is_found_by_its_outputs(aws: Any) -> None:
    create_stack(aws, "fluxrelay-prod", TEMPLATE)
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in aws.describe_stack_resources(StackName="fluxrelay-prod")["StackResources"]
    }

    target = deployed_target("fluxrelay-prod", REGION)

    assert target.deployed
    assert target.api_url == API_URL  # without the trailing slash: paths are appended
    assert target.bucket == resources["MediaBucket"]
    assert target.topic_arn == resources["JobEventsTopic"]
    assert (target.region, target.url_policy) == (REGION, "strict")
    assert "fluxrelay-prod" in target.description


def test_temporary_keys_go_into_the_stacks_table_and_are_all_revoked(aws: Any) -> None:
    create_stack(aws, "fluxrelay-prod", TEMPLATE)
    table = aws.describe_stacks(StackName="fluxrelay-prod")["Stacks"][0]["Outputs"]
    store = DynamoApiKeyStore(
        next(o["OutputValue"] for o in table if o["OutputKey"] == "TableName"),
        client=boto3.client("dynamodb", region_name=REGION),
    )

    env = {
        "ACCEPTANCE_STACK": "fluxrelay-prod",
        "ACCEPTANCE_REGION": REGION,
        "ACCEPTANCE_API_URL": "https://images.example.com/",
    }
    with target_from_env(Path("unused"), env) as target:
        assert target.api_url == "https://images.example.com"  # a custom domain replaces ApiUrl
        owners = [target.new_owner("alice"), target.new_owner("alice")]
        keys = [target.keys.create(owner) for owner in owners]
        found = [store.lookup(key) for key in keys]
        assert [item.owner if item else None for item in found] == owners
        assert owners[0] != owners[1]  # every run and role gets its own owner

    assert [store.lookup(key) for key in keys] == [None, None]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["Outputs"].pop("TableName"), "has no output TableName"),
        (lambda t: t["Outputs"].clear(), "has no output ApiUrl, TableName, BucketName, TopicArn"),
    ],
    ids=["one-missing", "all-missing"],
)
def test_a_stack_without_fluxrelays_outputs_is_refused(aws: Any, change: Any, message: str) -> None:
    template = json.loads(json.dumps(TEMPLATE))
    change(template)
    create_stack(aws, "other", template)

    with pytest.raises(TargetError, match=message):
        deployed_target("other", REGION)


def test_an_unknown_stack_is_named_in_the_error(aws: Any) -> None:
    with pytest.raises(TargetError, match="cannot describe stack 'nope'"):
        deployed_target("nope", REGION)


def test_no_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    with pytest.raises(TargetError, match="no AWS region"):
        deployed_target("fluxrelay", None)


# --------------------------------------------------------------------------- a running local stack
@pytest.fixture
def health_server() -> Iterator[str]:
    """An HTTP server whose /health answers 200, standing in for a running local stack's API."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    @Request.application
    def app(request: Request) -> Response:
        return Response("{}", status=200 if request.path == "/health" else 404)

    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def state_file(path: Path, api_url: str) -> Path:
    state = {
        "api_url": api_url,
        "aws_endpoint_url": "http://127.0.0.1:9",
        "region": "us-east-1",
        "bucket": "b",
        "table": "t",
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:t",
        "upstream": "standin",
        "url_policy": "development",
    }
    path.write_text(json.dumps(state), encoding="utf-8")
    return path


def test_a_running_local_stack_is_used_as_its_state_file_describes_it(
    tmp_path: Path, health_server: str
) -> None:
    env = {"ACCEPTANCE_STACK_JSON": str(state_file(tmp_path / "stack.json", health_server))}

    with target_from_env(tmp_path, env) as target:
        assert not target.deployed
        assert (target.api_url, target.bucket, target.url_policy) == (health_server, "b", "development")
        assert target.endpoint_url == "http://127.0.0.1:9"
        assert "the running local stack" in target.description


def test_a_state_file_whose_api_does_not_answer_is_not_a_running_stack(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        stale = state_file(tmp_path / "stack.json", f"http://127.0.0.1:{probe.getsockname()[1]}")

    assert running_state(stale) is None
    assert running_state(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    assert running_state(tmp_path / "broken.json") is None
