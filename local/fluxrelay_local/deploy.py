"""Deploy a SAM template into moto: SAM → CloudFormation offline, then moto's CloudFormation.

moto's CloudFormation creates the tables, buckets, topics, queues, roles and functions, but it has
gaps this module closes through the service APIs:
- state machines it creates are invisible to the *executing* Step Functions backend and their
  `DefinitionSubstitutions` are ignored: each is re-created through the API under the same name
  (so the ARN the functions were given stays valid), substitutions resolved;
- a bucket's `NotificationConfiguration` is ignored: it is applied with PutBucketNotificationConfiguration;
- an `AWS::Lambda::EventSourceMapping` it did not create is created through the API.
Values these fixes need (`!GetAtt Fn.Arn`, `!Ref Queue`...) are resolved by moto itself: each is added
to the template as an extra Output and read back after the stack is created.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor

LOG = logging.getLogger(__name__)
ARTIFACT_BUCKET = "fluxrelay-local-artifacts"
ARTIFACT_KEY = "code/placeholder.zip"
_DEFERRED_PREFIX = "FluxRelayLocalResolve"
_SENTINEL = "\x00fluxrelay-local-resolve:"
_PLACEHOLDER_DEFINITION = {"StartAt": "Placeholder", "States": {"Placeholder": {"Type": "Succeed"}}}


class DeployError(RuntimeError):
    """The template could not be deployed into moto."""


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that understands CloudFormation short-form intrinsics (!Ref, !GetAtt, !Sub...)."""


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise DeployError(f"{path} is not a SAM/CloudFormation template")
    return data


@dataclass(frozen=True)
class FunctionInfo:
    """A deployed function and where its Python handler lives on this machine."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout: int
    memory_mb: int
    environment: dict[str, str]


@dataclass
class DeployedStack:
    stack_name: str
    stack_id: str
    region: str
    template_path: Path
    sam_template: dict[str, Any]
    cfn_template: dict[str, Any]
    parameters: dict[str, str]
    # logical id -> (resource type, physical id)
    resources: dict[str, tuple[str, str]]
    outputs: dict[str, str]
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    # logical id -> ARN (as re-created on the executing backend)
    state_machines: dict[str, str] = field(default_factory=dict)
    secret_name: str | None = None

    def physical_ids(self, resource_type: str) -> dict[str, str]:
        return {lid: pid for lid, (rtype, pid) in self.resources.items() if rtype == resource_type}


class _Deferred:
    """Collects intrinsic expressions to be resolved by moto as extra stack Outputs."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, Any]] = {}

    def defer(self, value: Any) -> Any:
        """Replace every intrinsic in `value` by a sentinel string naming an extra Output."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key,) = value
                if key == "Ref" or key.startswith("Fn::"):
                    name = f"{_DEFERRED_PREFIX}{len(self.outputs)}"
                    self.outputs[name] = {"Value": copy.deepcopy(value)}
                    return _SENTINEL + name
            return {k: self.defer(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.defer(v) for v in value]
        return value

    @staticmethod
    def resolve(value: Any, outputs: dict[str, str]) -> Any:
        if isinstance(value, str) and value.startswith(_SENTINEL):
            name = value[len(_SENTINEL) :]
            if name not in outputs:
                raise DeployError(f"moto did not resolve an expression needed locally ({name})")
            return outputs[name]
        if isinstance(value, dict):
            return {k: _Deferred.resolve(v, outputs) for k, v in value.items()}
        if isinstance(value, list):
            return [_Deferred.resolve(v, outputs) for v in value]
        return value


class _NoManagedPolicies:
    """samtranslator's managed-policy loader; offline there is no IAM to ask, and SAM policy
    templates (DynamoDBCrudPolicy...) do not need it."""

    def load(self) -> dict[str, str]:
        return {}


def unsupported_resource_types(cfn_template: dict[str, Any]) -> list[str]:
    """Resource types moto's CloudFormation skips (e.g. AWS::ApiGatewayV2::*, served by apigw.py)."""
    from moto.cloudformation.parsing import get_model_map

    known = get_model_map()
    types = {r["Type"] for r in cfn_template["Resources"].values()}
    return sorted(t for t in types if t not in known and not t.startswith("Custom::"))


class _SkipUnsupportedNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No Moto CloudFormation support")


def quiet_moto_cloudformation() -> None:
    """moto warns (log + UserWarning) about each skipped resource type every time it re-parses the
    stack; deploy_template reports them once instead. Narrow, process-wide, idempotent."""
    moto_logger = logging.getLogger("moto")
    if not any(isinstance(f, _SkipUnsupportedNotice) for f in moto_logger.filters):
        moto_logger.addFilter(_SkipUnsupportedNotice())
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto")


def _placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        # The code really runs in-process from the working tree (lambdas.py); this only
        # satisfies CreateFunction / PublishLayerVersion.
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and not value.startswith("s3://")


def _prepare_sam(
    sam: dict[str, Any], base_dir: Path
) -> tuple[dict[str, Any], dict[str, Path], dict[str, str]]:
    """Rewrite local artifact paths: returns (template, function code dirs, state machine definitions)."""
    sam = copy.deepcopy(sam)
    s3_uri = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
    globals_fn = sam.get("Globals", {}).get("Function", {})
    global_code_uri = globals_fn.get("CodeUri")
    if _is_local_path(global_code_uri):
        globals_fn["CodeUri"] = s3_uri
    code_dirs: dict[str, Path] = {}
    definitions: dict[str, str] = {}
    for logical_id, resource in sam["Resources"].items():
        rtype = resource.get("Type")
        props = resource.setdefault("Properties", {})
        if rtype == "AWS::Serverless::Function":
            code_uri = props.get("CodeUri", global_code_uri)
            if _is_local_path(code_uri):
                code_dirs[logical_id] = (base_dir / code_uri).resolve()
                props["CodeUri"] = s3_uri
        elif rtype == "AWS::Serverless::LayerVersion":
            if _is_local_path(props.get("ContentUri")):
                props["ContentUri"] = s3_uri
        elif rtype == "AWS::Serverless::StateMachine":
            uri = props.pop("DefinitionUri", None)
            if uri is not None:
                if not _is_local_path(uri):
                    raise DeployError(f"{logical_id}: only a local DefinitionUri is supported")
                # The file is a template, not JSON, until substituted (e.g. an unquoted
                # `"TimeoutSeconds": ${Timeout}`): keep its text for the re-creation, and give
                # moto's CloudFormation a placeholder (its copy never executes anyway).
                definitions[logical_id] = (base_dir / uri).read_text(encoding="utf-8")
                props["Definition"] = _PLACEHOLDER_DEFINITION
            elif "Definition" in props:
                definitions[logical_id] = json.dumps(props["Definition"])
                props["Definition"] = _PLACEHOLDER_DEFINITION
    return sam, code_dirs, definitions


def _parameter_values(sam: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    declared = sam.get("Parameters", {}) or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise DeployError(f"parameter overrides not declared by the template: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            default = spec["Default"]
            values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        else:
            raise DeployError(f"parameter {name} has no default and no override")
    return values


def _s3_notification_to_api(cfn: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation NotificationConfiguration → PutBucketNotificationConfiguration shape."""

    def filt(entry: dict[str, Any]) -> dict[str, Any]:
        rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}

    api: dict[str, Any] = {}
    for cfn_key, api_key, target_cfn, target_api in (
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
    ):
        entries = cfn.get(cfn_key) or []
        if entries:
            api[api_key] = [{target_api: e[target_cfn], "Events": [e["Event"]], **filt(e)} for e in entries]
    if (cfn.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (True, "true"):
        api["EventBridgeConfiguration"] = {}
    return api


def deploy_template(
    template_path: Path,
    *,
    stack_name: str,
    region: str,
    parameter_overrides: dict[str, str] | None = None,
    wavespeed_api_key: str | None = None,
    on_functions_ready: Callable[[DeployedStack], None] | None = None,
) -> DeployedStack:
    """Deploy `template_path` into the moto server that `AWS_ENDPOINT_URL` points at."""
    template_path = template_path.resolve()
    sam = load_template(template_path)
    parameters = _parameter_values(sam, parameter_overrides or {})
    prepared, code_dirs, definitions = _prepare_sam(sam, template_path.parent)

    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    else:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=_placeholder_zip())

    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    cfn_template = transform(prepared, dict(parameters), _NoManagedPolicies())

    deferred = _Deferred()
    machine_extras: dict[str, dict[str, Any]] = {}
    notifications: dict[str, dict[str, Any]] = {}
    mappings: dict[str, dict[str, Any]] = {}
    for logical_id, resource in cfn_template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            machine_extras[logical_id] = {
                "subs": deferred.defer(props.get("DefinitionSubstitutions", {})),
                "role": deferred.defer(props.get("RoleArn")),
                "type": props.get("StateMachineType", "STANDARD"),
            }
        elif resource["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in props:
            notifications[logical_id] = deferred.defer(props["NotificationConfiguration"])
        elif resource["Type"] == "AWS::Lambda::EventSourceMapping":
            mappings[logical_id] = deferred.defer(props)
    cfn_template.setdefault("Outputs", {}).update(deferred.outputs)

    cfn = boto3.client("cloudformation", region_name=region)
    skipped = unsupported_resource_types(cfn_template)
    if skipped:
        LOG.info("moto's CloudFormation skips %s (emulated or not needed locally)", ", ".join(skipped))
    quiet_moto_cloudformation()
    stack_id = cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )["StackId"]
    described = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
            for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
            if "FAILED" in e.get("ResourceStatus", "")
        ]
        raise DeployError(f"stack {stack_name} is {described['StackStatus']}: {reasons}")

    all_outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in described.get("Outputs", [])}
    outputs = {k: v for k, v in all_outputs.items() if not k.startswith(_DEFERRED_PREFIX)}
    resources: dict[str, tuple[str, str]] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id):
        for r in page["StackResourceSummaries"]:
            resources[r["LogicalResourceId"]] = (r["ResourceType"], r.get("PhysicalResourceId", ""))

    stack = DeployedStack(
        stack_name=stack_name,
        stack_id=stack_id,
        region=region,
        template_path=template_path,
        sam_template=sam,
        cfn_template=cfn_template,
        parameters=parameters,
        resources=resources,
        outputs=outputs,
    )
    _collect_functions(stack, code_dirs)
    if on_functions_ready is not None:
        # Before anything can invoke a function: applying a bucket notification makes S3 send an
        # s3:TestEvent to the queue, which the event-source mapping delivers to the function at once.
        on_functions_ready(stack)
    _recreate_state_machines(stack, machine_extras, definitions, all_outputs)
    _ensure_event_source_mappings(stack, mappings, all_outputs)
    _apply_bucket_notifications(stack, notifications, all_outputs)
    _create_wavespeed_secret(stack, wavespeed_api_key)
    return stack


def _collect_functions(stack: DeployedStack, code_dirs: dict[str, Path]) -> None:
    lam = boto3.client("lambda", region_name=stack.region)
    for logical_id, name in stack.physical_ids("AWS::Lambda::Function").items():
        if logical_id not in code_dirs:
            continue  # e.g. a function with InlineCode: nothing of ours to run
        conf = lam.get_function_configuration(FunctionName=name)
        stack.functions[logical_id] = FunctionInfo(
            logical_id=logical_id,
            name=conf["FunctionName"],
            arn=conf["FunctionArn"],
            code_dir=code_dirs[logical_id],
            handler=conf["Handler"],
            timeout=int(conf.get("Timeout") or 3),
            memory_mb=int(conf.get("MemorySize") or 128),
            # moto resolves `!Ref` of a Number parameter to an int; Lambda's values are strings.
            environment={k: str(v) for k, v in conf.get("Environment", {}).get("Variables", {}).items()},
        )


def _recreate_state_machines(
    stack: DeployedStack,
    extras: dict[str, dict[str, Any]],
    definitions: dict[str, str],
    outputs: dict[str, str],
) -> None:
    sfn = boto3.client("stepfunctions", region_name=stack.region)
    for logical_id, arn in stack.physical_ids("AWS::StepFunctions::StateMachine").items():
        extra = extras[logical_id]
        if logical_id not in definitions:
            raise DeployError(f"{logical_id}: cannot recover the state machine definition")
        text = definitions[logical_id]
        subs = _Deferred.resolve(extra["subs"], outputs)
        for key, value in subs.items():
            # Substituted inside a JSON document: values are ARNs/names/numbers, never quotes.
            text = text.replace("${" + key + "}", str(value))
        if "${" in text:
            leftover = sorted({part.split("}")[0] for part in text.split("${")[1:]})
            raise DeployError(f"{logical_id}: unsubstituted placeholders {leftover}")
        try:
            json.loads(text)
        except ValueError as exc:
            raise DeployError(f"{logical_id}: the substituted definition is not JSON: {exc}") from exc
        role = _Deferred.resolve(extra["role"], outputs) or (
            "arn:aws:iam::123456789012:role/fluxrelay-local-states"
        )
        name = arn.rsplit(":", 1)[-1]
        created = sfn.create_state_machine(name=name, definition=text, roleArn=role, type=extra["type"])[
            "stateMachineArn"
        ]
        stack.state_machines[logical_id] = created


def _apply_bucket_notifications(
    stack: DeployedStack, notifications: dict[str, dict[str, Any]], outputs: dict[str, str]
) -> None:
    s3 = boto3.client("s3", region_name=stack.region)
    buckets = stack.physical_ids("AWS::S3::Bucket")
    for logical_id, config in notifications.items():
        api = _s3_notification_to_api(_Deferred.resolve(config, outputs))
        s3.put_bucket_notification_configuration(Bucket=buckets[logical_id], NotificationConfiguration=api)


def _ensure_event_source_mappings(
    stack: DeployedStack, mappings: dict[str, dict[str, Any]], outputs: dict[str, str]
) -> None:
    # moto 5.2.5's CloudFormation does create them; this covers versions/shapes where it does not.
    lam = boto3.client("lambda", region_name=stack.region)
    for logical_id, props in mappings.items():
        if stack.resources.get(logical_id, ("", ""))[1]:
            continue
        resolved = _Deferred.resolve(props, outputs)
        kwargs = {
            k: v
            for k, v in resolved.items()
            if k
            in ("EventSourceArn", "FunctionName", "BatchSize", "Enabled", "MaximumBatchingWindowInSeconds")
        }
        created = lam.create_event_source_mapping(**kwargs)
        stack.resources[logical_id] = ("AWS::Lambda::EventSourceMapping", created["UUID"])


def _create_wavespeed_secret(stack: DeployedStack, api_key: str | None) -> None:
    name = stack.parameters.get("WaveSpeedSecretName")
    if not name:
        names = {f.environment.get("WAVESPEED_SECRET_NAME") for f in stack.functions.values()} - {None, ""}
        name = names.pop() if len(names) == 1 else None
    if not name or api_key is None:
        return
    sm = boto3.client("secretsmanager", region_name=stack.region)
    try:
        sm.create_secret(Name=name, SecretString=api_key)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=api_key)
    stack.secret_name = name
