"""The acceptance suite's deployed mode, against moto's CloudFormation: it finds the stack's
outputs, issues temporary API keys into the stack's table and revokes them afterwards, and says
clearly what is wrong with a stack it cannot use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fluxrelay.adapters.dynamo_keys import DynamoApiKeyStore
from fluxrelay_local.deploy import load_template
from tests.acceptance.target import REQUIRED_OUTPUTS, TargetError, deployed_target, target_from_env

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
