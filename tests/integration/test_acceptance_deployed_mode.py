"""The acceptance suite's deployed mode (`make acceptance STACK=...`) against the real template:
the local stack creates it through moto's CloudFormation, so its outputs are read as on AWS and
the temporary keys land in its table and authenticate at its API."""

from __future__ import annotations

from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
from fluxrelay_local.stack import LocalStack
from tests.acceptance.target import deployed_target
from tests.support.stack import Api


def test_deployed_mode_reads_the_stack_outputs_and_issues_working_keys(stack: LocalStack) -> None:
    # The stack points boto3 at moto (AWS_ENDPOINT_URL); ApiUrl names API Gateway, which moto
    # does not run, so the emulator's URL replaces it as a custom domain would.
    target = deployed_target(stack.config.stack_name, stack.config.region, api_url=stack.api_url)

    assert (target.table, target.bucket, target.topic_arn) == (stack.table, stack.bucket, stack.topic_arn)
    assert target.deployed
    key = target.keys.create(target.new_owner("deployed-mode"))
    unknown_job = Api(target.api_url, key).result("0" * 32)
    assert unknown_job.status_code == 404, unknown_job.text  # past the authorizer: the key works

    target.keys.revoke_all()
    assert DynamoApiKeyStore(stack.table, client=stack.client("dynamodb")).lookup(key) is None
