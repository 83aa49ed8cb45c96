"""What tests, the CLI and `.local/stack.json` read of a deployed local stack: each resource by
the template's named Output, else the only resource of its kind."""

from __future__ import annotations

import json
import re
from typing import Any

from fluxrelay_local.deploy import DeployedStack

# An API Gateway endpoint in an output, e.g. https://${HttpApi}.execute-api.us-east-1.amazonaws.com
_API_ENDPOINT = re.compile(r"https://\$\{\w+\}\.execute-api\.[^/]*/?")


class StackResources:
    """The resources of one deploy into the emulated AWS."""

    def __init__(self, deployed: DeployedStack, region: str) -> None:
        self.deployed = deployed
        self.region = region

    def pick(self, output: str, resource_type: str) -> str:
        """The template's named Output if it has one, else the only resource of the type."""
        if self.deployed.outputs.get(output):
            return self.deployed.outputs[output]
        found = sorted(self.deployed.physical_ids(resource_type).values())
        return found[0] if len(found) == 1 else ""

    @property
    def table(self) -> str:
        return self.pick("TableName", "AWS::DynamoDB::Table")

    @property
    def bucket(self) -> str:
        return self.pick("BucketName", "AWS::S3::Bucket")

    @property
    def topic_arn(self) -> str:
        return self.pick("TopicArn", "AWS::SNS::Topic")

    @property
    def state_machine_arn(self) -> str:
        """The workflow the API starts: the StateMachineArn output, else the functions'
        STATE_MACHINE_ARN, else the only state machine."""
        if self.deployed.outputs.get("StateMachineArn"):
            return self.deployed.outputs["StateMachineArn"]
        configured = {
            f.environment["STATE_MACHINE_ARN"]
            for f in self.deployed.functions.values()
            if f.environment.get("STATE_MACHINE_ARN")
        }
        if len(configured) == 1:
            return configured.pop()
        arns = sorted(self.deployed.state_machines.values())
        return arns[0] if len(arns) == 1 else ""

    @property
    def functions(self) -> dict[str, str]:
        """Logical id → deployed function name."""
        return {lid: fn.name for lid, fn in self.deployed.functions.items()}

    def scheduled_functions(self) -> list[str]:
        """The logical ids of the functions with a Schedule event (EventBridge runs them on AWS)."""
        return [
            logical_id
            for logical_id, resource in self.deployed.sam_template.get("Resources", {}).items()
            if resource.get("Type") == "AWS::Serverless::Function"
            and any(
                e.get("Type") == "Schedule" for e in (resource["Properties"].get("Events") or {}).values()
            )
        ]

    def queues(self) -> tuple[str, str]:
        """(the queue an event-source mapping reads, i.e. img2img; its dead-letter queue)."""
        import boto3

        lam = boto3.client("lambda", region_name=self.region)
        sqs = boto3.client("sqs", region_name=self.region)
        queue_urls = self.deployed.physical_ids("AWS::SQS::Queue").values()
        by_arn = {
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]: url
            for url in queue_urls
        }
        sources = [
            m["EventSourceArn"]
            for m in lam.list_event_source_mappings().get("EventSourceMappings", [])
            if m.get("EventSourceArn") in by_arn
        ]
        if len(sources) != 1:
            return "", ""
        main_url = by_arn[sources[0]]
        redrive = sqs.get_queue_attributes(QueueUrl=main_url, AttributeNames=["RedrivePolicy"])
        dlq_arn = json.loads(redrive.get("Attributes", {}).get("RedrivePolicy", "{}")).get(
            "deadLetterTargetArn", ""
        )
        return main_url, by_arn.get(dlq_arn, "")

    def outputs(self, api_url: str) -> dict[str, str]:
        """The stack's outputs; one naming an HTTP API's endpoint is `api_url` (moto's
        CloudFormation does not create the API, so it leaves `https://${HttpApi}.execute-api...`)."""
        return {
            name: api_url if _API_ENDPOINT.fullmatch(value) else value
            for name, value in self.deployed.outputs.items()
        }

    def describe(self, **endpoints: Any) -> dict[str, Any]:
        """The resources for `.local/stack.json`, after the stack's own `endpoints` (api_url, ...)."""
        img2img_queue_url, dlq_url = self.queues()
        return {
            **endpoints,
            "bucket": self.bucket,
            "table": self.table,
            "topic_arn": self.topic_arn,
            "state_machine_arn": self.state_machine_arn,
            "state_machines": dict(self.deployed.state_machines),
            "img2img_queue_url": img2img_queue_url,
            "dlq_url": dlq_url,
            "functions": self.functions,
            "wavespeed_secret_name": self.deployed.secret_name or "",
            "outputs": self.outputs(endpoints.get("api_url", "")),
        }
