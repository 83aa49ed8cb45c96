"""Static checks of template.yaml: the contract between the template, the ASL and the code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml

from fluxrelay.adapters.dynamo.jobs import ACTIVE_INDEX
from fluxrelay.settings import NsfwPolicy, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
ASL_PATH = ROOT / "statemachines" / "generation.asl.json"

FUNCTIONS = {
    "ApiFunction": "api",
    "AuthorizerFunction": "authorizer",
    "ParkJobFunction": "park_job",
    "CheckResultFunction": "check_result",
    "StoreOutputsFunction": "store_outputs",
    "MarkFailedFunction": "mark_failed",
    "NotifyFunction": "notify",
    "S3TriggerFunction": "s3_trigger",
    "ExpireUploadFunction": "expire_upload",
    "SweepJobsFunction": "sweep_jobs",
}
UPSTREAM_CALLERS = {"ApiFunction", "CheckResultFunction", "S3TriggerFunction"}
STATE_MACHINE_STARTERS = {"ApiFunction", "S3TriggerFunction", "ExpireUploadFunction", "SweepJobsFunction"}
WAVESPEED_SECRET_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${WaveSpeedSecretName}-*"
)
WAVESPEED_WEBHOOK_SECRET_ARN = WAVESPEED_SECRET_ARN.replace(
    "{WaveSpeedSecretName}", "{WaveSpeedWebhookSecretName}"
)
WEBHOOK_SECRETS_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/webhook/*"
)
# The only actions allowed on Resource "*": AWS offers no resource-level permissions for them.
WILDCARD_RESOURCE_ACTIONS = {
    # Step Functions -> CloudWatch Logs vended delivery
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # X-Ray (SAM adds AWSXrayWriteOnlyAccess itself for Tracing; listed in case it is written inline)
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    # Callbacks of .waitForTaskToken service-integration tasks: the token names the execution
    "states:SendTaskSuccess",
}
# Parameters -> environment variables (the template contract: settings.py aliases).
PARAMETER_ENV = {
    "WaveSpeedBaseUrl": "WAVESPEED_BASE_URL",
    "WaveSpeedSecretName": "WAVESPEED_SECRET_NAME",
    "WaveSpeedWebhookSecretName": "WAVESPEED_WEBHOOK_SECRET_NAME",
    "ExpectedSecondsPerImage": "EXPECTED_SECONDS_PER_IMAGE",
    "PollIntervalSeconds": "POLL_INTERVAL_SECONDS",
    "PollMaxIntervalSeconds": "POLL_MAX_INTERVAL_SECONDS",
    "JobDeadlineSeconds": "JOB_DEADLINE_SECONDS",
    "CancelledOutputs": "CANCELLED_OUTPUTS",
    "OutputUrlTtlSeconds": "OUTPUT_URL_TTL_SECONDS",
    "WebhookRetrySpanSeconds": "WEBHOOK_RETRY_SPAN_SECONDS",
    "WebhookRetryBaseSeconds": "WEBHOOK_RETRY_BASE_SECONDS",
    "UrlPolicy": "FLUXRELAY_URL_POLICY",
    "LoraAllowlist": "LORA_ALLOWLIST",
    "NsfwPolicy": "NSFW_POLICY",
    "CostPrices": "COST_PRICES",
    "LogLevel": "POWERTOOLS_LOG_LEVEL",
    "MaxConcurrentUpstreamTasks": "MAX_CONCURRENT_UPSTREAM_TASKS",
    "AmbiguousSubmitWindowSeconds": "AMBIGUOUS_SUBMIT_WINDOW_SECONDS",
    "SweepGraceSeconds": "SWEEP_GRACE_SECONDS",
    "DefaultRequestsPerMinute": "DEFAULT_REQUESTS_PER_MINUTE",
    "DefaultImagesPerDay": "DEFAULT_IMAGES_PER_DAY",
    # jobs (the history) are kept as long as their images
    "OutputRetentionDays": "JOB_TTL_DAYS",
}
RESOURCE_ENV = {"TABLE_NAME": "JobsTable", "BUCKET_NAME": "MediaBucket", "TOPIC_ARN": "JobEventsTopic"}
WEBHOOK_SECRET_PREFIX = "${AWS::StackName}/webhook/"
ROUTES = {
    ("POST", "/api/v3/wavespeed-ai/flux-schnell-lora"): True,
    ("GET", "/api/v3/predictions/{id}/result"): True,
    ("GET", "/api/v3/predictions/{id}"): True,
    ("POST", "/api/v3/predictions"): True,
    ("POST", "/api/v3/predictions/{id}/cancel"): True,
    ("GET", "/api/v3/predictions"): True,
    ("GET", "/api/v3/webhook/secret"): True,
    ("POST", "/api/v3/webhook/secret/rotate"): True,
    ("GET", "/api/v3/predictions/{id}/webhooks"): True,
    ("POST", "/api/v3/predictions/{id}/webhooks/redeliver"): True,
    ("POST", "/api/v3/webhooks/redeliver"): True,
    ("POST", "/api/v3/media/uploads"): True,
    ("POST", "/api/v3/upstream/webhooks/{id}"): False,
    ("POST", "/api/v3/media/upload/binary"): True,
    ("POST", "/api/v3/img2img/uploads"): True,
    ("GET", "/health"): False,
    ("GET", "/openapi.json"): False,
    # the catch-all, so unknown paths get the 404 envelope from the function
    ("ANY", "$default"): False,
}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
# With EncryptionKey=customer-managed the stack's key, otherwise the service's default encryption.
WITH_DATA_KEY = {
    "Fn::If": ["UsesCustomerManagedKey", {"Fn::GetAtt": ["DataKey", "Arn"]}, {"Ref": "AWS::NoValue"}]
}
CHECKOV_SKIP = re.compile(r"#\s*checkov:skip=(?P<id>[A-Z0-9_]+)(?::\s*(?P<reason>.*))?$")
# Lambda's default account quota, of which AWS keeps 100 unreserved.
ACCOUNT_CONCURRENCY = 1000


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE_PATH))


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return resources[logical_id]["Properties"]


def _function_setting(template: dict[str, Any], logical_id: str, key: str) -> Any:
    props = template["Resources"][logical_id]["Properties"]
    return props.get(key, template["Globals"]["Function"].get(key))


def _environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    # SAM merges Globals and function environment maps (the function wins).
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    props = template["Resources"][logical_id]["Properties"]
    merged.update(props.get("Environment", {}).get("Variables", {}))
    return merged


def _policy_templates(resources: dict[str, Any], logical_id: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for policy in _props(resources, logical_id).get("Policies", []):
        # {"Fn::If": [...]} attaches a managed policy of the template, not a SAM policy template.
        if isinstance(policy, dict) and not {"Statement", "Fn::If"} & set(policy):
            ((name, args),) = policy.items()
            found.setdefault(name, []).append(args)
    return found


def _inline_statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    statements = []
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []) if isinstance(props.get("Policies"), list) else []:
            if isinstance(policy, dict) and "Statement" in policy:
                statements += [(logical_id, s) for s in policy["Statement"]]
            elif isinstance(policy, dict) and "PolicyDocument" in policy:
                statements += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
        if "PolicyDocument" in props:
            statements += [(logical_id, s) for s in props["PolicyDocument"]["Statement"]]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_top_level_sections_are_in_house_order(template: dict[str, Any]) -> None:
    order = [k for k in template if k != "AWSTemplateFormatVersion"]
    assert order == [
        "Transform",
        "Description",
        "Parameters",
        "Conditions",
        "Globals",
        "Resources",
        "Outputs",
    ]


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE_PATH)
    assert [str(m) for m in matches] == []


STATE_MACHINES = {
    "GenerationStateMachine": ASL_PATH,
    "UploadExpiryStateMachine": ROOT / "statemachines" / "upload_expiry.asl.json",
}


@pytest.mark.parametrize(("logical_id", "asl"), sorted(STATE_MACHINES.items()))
def test_every_asl_placeholder_has_a_substitution_and_every_substitution_is_used(
    resources: dict[str, Any], logical_id: str, asl: Path
) -> None:
    props = _props(resources, logical_id)
    assert (ROOT / props["DefinitionUri"]) == asl
    placeholders = set(PLACEHOLDER.findall(asl.read_text()))
    substitutions = set(props["DefinitionSubstitutions"])
    assert placeholders - substitutions == set(), "placeholders without a substitution"
    assert substitutions - placeholders == set(), "substitutions the ASL never uses"


@pytest.mark.parametrize("logical_id", sorted(STATE_MACHINES))
def test_state_machine_invokes_exactly_its_task_functions(resources: dict[str, Any], logical_id: str) -> None:
    props = _props(resources, logical_id)
    arns = {
        key: value["Fn::GetAtt"]
        for key, value in props["DefinitionSubstitutions"].items()
        if key.endswith("FunctionArn")
    }
    invoked = {
        args["FunctionName"]["Ref"] for args in _policy_templates(resources, logical_id)["LambdaInvokePolicy"]
    }
    assert {target[0] for target in arns.values()} == invoked
    assert all(target[1] == "Arn" for target in arns.values())
    assert props["Type"] == "STANDARD"
    assert props["Tracing"] == {"Enabled": True}
    assert props["Logging"]["Level"] == "ERROR"
    assert props["Logging"]["IncludeExecutionData"] is False


def test_workflow_timeout_outlasts_the_longest_deadline_and_webhook_span_allowed(
    template: dict[str, Any],
) -> None:
    # TimeoutSeconds is a literal (a substituted number would make the ASL invalid JSON), so the
    # parameters are bounded to fit under it with an hour to spare.
    params = template["Parameters"]
    timeout = json.loads(ASL_PATH.read_text())["TimeoutSeconds"]
    longest = int(params["JobDeadlineSeconds"]["MaxValue"]) + int(
        params["WebhookRetrySpanSeconds"]["MaxValue"]
    )
    assert timeout >= longest + 3600


@pytest.mark.parametrize("asl", sorted(STATE_MACHINES.values()))
def test_asl_is_valid_json_before_substitution(asl: Path) -> None:
    # The local stack parses the file before it substitutes ARNs: placeholders must sit in strings.
    definition = json.loads(asl.read_text())
    assert isinstance(definition["TimeoutSeconds"], int)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_runs_python313_on_arm64_with_the_layer(template: dict[str, Any], logical_id: str) -> None:
    props = template["Resources"][logical_id]["Properties"]
    assert template["Resources"][logical_id]["Type"] == "AWS::Serverless::Function"
    runtime = _function_setting(template, logical_id, "Runtime")
    assert re.fullmatch(r"python3\.(\d+)", runtime)
    assert int(runtime.split(".")[1]) >= 13
    assert _function_setting(template, logical_id, "Architectures") == ["arm64"]
    assert _function_setting(template, logical_id, "Handler") == "app.handler"
    assert _function_setting(template, logical_id, "Tracing") == "Active"
    assert _function_setting(template, logical_id, "Layers") == [{"Ref": "FluxRelayLayer"}]
    assert props["CodeUri"] == f"functions/{FUNCTIONS[logical_id]}/"
    assert (ROOT / props["CodeUri"] / "app.py").is_file()


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_logs_to_its_own_log_group_with_retention(
    resources: dict[str, Any], logical_id: str
) -> None:
    log_group = _props(resources, logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    others = [f for f in FUNCTIONS if f != logical_id]
    assert all(_props(resources, f)["LoggingConfig"]["LogGroup"]["Ref"] != log_group for f in others)


def test_every_log_group_has_retention(resources: dict[str, Any]) -> None:
    groups = {k: r for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert len(groups) == len(FUNCTIONS) + 3  # + API access logs + two state machines
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())


def test_api_function_answers_before_the_api_gateway_limit(template: dict[str, Any]) -> None:
    assert int(_function_setting(template, "ApiFunction", "Timeout")) <= 29


def test_layer_is_built_by_its_makefile_for_arm64(resources: dict[str, Any]) -> None:
    layer = resources["FluxRelayLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    makefile = (ROOT / layer["Properties"]["ContentUri"] / "Makefile").read_text()
    assert re.search(r"^build-FluxRelayLayer:", makefile, re.MULTILINE)
    assert "manylinux2014_aarch64" in makefile
    assert "--python-version 3.13" in makefile
    # ...and ships its bytecode (tests/unit/test_layer_build.py runs that step).
    build = makefile.split("build-FluxRelayLayer:", 1)[1].split("\n\n", 1)[0]
    assert "$(BYTECODE)" in build


def test_layer_requirements_are_exactly_the_runtime_pins_of_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [
        line.strip()
        for line in (ROOT / "layers" / "fluxrelay" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert requirements == pyproject["project"]["dependencies"]
    assert all("==" in requirement for requirement in requirements)


def test_http_api_routes_and_their_authorization(resources: dict[str, Any]) -> None:
    api = _props(resources, "HttpApi")
    auth = api["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["EnableSimpleResponses"] is True
    # No identity source, no cache: a request without a key must still reach the API function,
    # which answers the WaveSpeed 401 envelope (API Gateway's own 401 body is not an envelope).
    assert authorizer["Identity"] == {"ReauthorizeEvery": 0}
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}

    routes = {}
    for event in _props(resources, "ApiFunction")["Events"].values():
        assert event["Type"] == "HttpApi"
        p = event["Properties"]
        assert p["ApiId"] == {"Ref": "HttpApi"}
        routes[(p.get("Method", "ANY"), p.get("Path", "$default"))] = (
            p.get("Auth", {}).get("Authorizer") != "NONE"
        )
    assert routes == ROUTES


def test_parameters_reach_every_function_as_contract_env_vars(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    for logical_id in FUNCTIONS:
        env = _environment(template, logical_id)
        for param, var in PARAMETER_ENV.items():
            assert param in params
            assert env[var] == {"Ref": param}, (logical_id, var)
        for var, resource in RESOURCE_ENV.items():
            assert env[var] == {"Ref": resource}, (logical_id, var)
        # The code names webhook secrets with this prefix; IAM grants exactly it.
        assert env["WEBHOOK_SECRET_PREFIX"] == {"Fn::Sub": WEBHOOK_SECRET_PREFIX}
        assert WEBHOOK_SECRETS_ARN.endswith(":secret:" + WEBHOOK_SECRET_PREFIX + "*")
        assert env["POWERTOOLS_SERVICE_NAME"] == "fluxrelay"
        assert env["POWERTOOLS_METRICS_NAMESPACE"]
        if logical_id in STATE_MACHINE_STARTERS:
            assert env["STATE_MACHINE_ARN"] == {"Ref": "GenerationStateMachine"}
        else:
            # The state machine references the task functions: this would be a cycle.
            assert "STATE_MACHINE_ARN" not in env
    assert params["UrlPolicy"]["Default"] == "strict"
    assert set(params["UrlPolicy"]["AllowedValues"]) == {"strict", "development"}
    assert params["LoraAllowlist"]["Default"] == ""
    assert params["NsfwPolicy"]["Default"] == Settings().nsfw_policy
    assert set(params["NsfwPolicy"]["AllowedValues"]) == set(NsfwPolicy)
    assert int(params["Img2ImgMaxConcurrency"]["MinValue"]) >= 2


def test_the_authorizer_cache_window_is_a_parameter_of_the_authorizer(template: dict[str, Any]) -> None:
    param = template["Parameters"]["AuthorizerCacheSeconds"]
    assert (int(param["Default"]), int(param["MinValue"])) == (60, 0)
    env = _environment(template, "AuthorizerFunction")
    assert env["AUTHORIZER_CACHE_SECONDS"] == {"Ref": "AuthorizerCacheSeconds"}


def test_env_var_names_are_settings_aliases(template: dict[str, Any]) -> None:
    from fluxrelay.settings import Settings

    aliases = Settings.variables()
    libraries = {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
        "PYDANTIC_DISABLE_PLUGINS",
    }
    for logical_id in FUNCTIONS:
        assert set(_environment(template, logical_id)) - libraries <= aliases


def test_no_function_looks_for_pydantic_plugins(template: dict[str, Any]) -> None:
    # Given the setting every function has
    for logical_id in FUNCTIONS:
        assert _environment(template, logical_id)["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "__all__"}
    # When a fresh process builds its first model with the installed pydantic, reading the
    # installed packages' metadata (where plugins are found) fails loudly
    script = (
        "import importlib.metadata as m\n"
        "def refuse(*a, **k): raise AssertionError('package metadata read')\n"
        "m.distributions = m.entry_points = refuse\n"
        "from pydantic import BaseModel\n"
        "class Job(BaseModel):\n    job_id: str\n"
        "print(Job(job_id='x').job_id)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)  # noqa: S603
    # Then it never reads it
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "x"
    # (and without the setting it does, so the check above can fail)
    env.pop("PYDANTIC_DISABLE_PLUGINS")
    unset = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)  # noqa: S603
    assert unset.returncode != 0


def test_every_parameter_is_used(template: dict[str, Any]) -> None:
    text = TEMPLATE_PATH.read_text()
    for name in template["Parameters"]:
        uses = len(re.findall(rf"!Ref {name}\b|\$\{{{name}\}}|Ref: {name}\b", text))
        assert uses >= 1, name


def test_upstream_callers_and_only_they_read_the_wavespeed_secret(resources: dict[str, Any]) -> None:
    for logical_id in FUNCTIONS:
        grants = _policy_templates(resources, logical_id).get("AWSSecretsManagerGetSecretValuePolicy", [])
        if logical_id in UPSTREAM_CALLERS:
            assert grants == [{"SecretArn": {"Fn::Sub": WAVESPEED_SECRET_ARN}}]
        else:
            assert grants == []


def test_only_the_api_reads_the_wavespeed_webhook_secret_and_only_when_it_is_named(
    resources: dict[str, Any],
) -> None:
    # The API verifies the upstream's webhooks; unnamed, the grant falls back to the key's secret.
    readers = [
        (logical_id, statement["Resource"])
        for logical_id, statement in _inline_statements(resources)
        if statement.get("Sid") == "WaveSpeedWebhookSecret"
    ]
    assert readers == [
        (
            "ApiFunction",
            {
                "Fn::If": [
                    "HasWebhookSecretName",
                    {"Fn::Sub": WAVESPEED_WEBHOOK_SECRET_ARN},
                    {"Fn::Sub": WAVESPEED_SECRET_ARN},
                ]
            },
        )
    ]


def test_webhook_secret_statements_are_scoped_to_the_stack_prefix(resources: dict[str, Any]) -> None:
    expected = {
        "ApiFunction": {
            "secretsmanager:GetSecretValue",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:DescribeSecret",
        },
        "NotifyFunction": {"secretsmanager:GetSecretValue"},
    }
    granted: dict[str, set[str]] = {}
    for logical_id, statement in _inline_statements(resources):
        actions = set(_as_list(statement["Action"]))
        if (
            any(a.startswith("secretsmanager:") for a in actions)
            and statement["Sid"] != "WaveSpeedWebhookSecret"
        ):
            assert statement["Resource"] == {"Fn::Sub": WEBHOOK_SECRETS_ARN}
            granted.setdefault(logical_id, set()).update(actions)
    assert granted == expected


def test_policy_templates_are_scoped_by_reference(resources: dict[str, Any]) -> None:
    for logical_id, resource in resources.items():
        if resource["Type"] not in {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}:
            continue
        for name, grants in _policy_templates(resources, logical_id).items():
            for args in grants:
                for value in args.values():
                    assert isinstance(value, dict), f"{logical_id} {name} uses a literal {value!r}"
                    assert {"Ref", "Fn::GetAtt", "Fn::Sub"} & set(value)


def test_no_wildcard_resource_outside_the_documented_exceptions(resources: dict[str, Any]) -> None:
    for logical_id, statement in _inline_statements(resources):
        if statement["Effect"] != "Allow":
            continue
        if "*" in _as_list(statement["Resource"]):
            actions = set(_as_list(statement["Action"]))
            assert actions <= WILDCARD_RESOURCE_ACTIONS, (logical_id, actions - WILDCARD_RESOURCE_ACTIONS)
        assert not any(a == "*" or a.endswith(":*") for a in _as_list(statement["Action"])), logical_id


def test_no_hard_coded_physical_names(resources: dict[str, Any]) -> None:
    name_keys = {"TableName", "BucketName", "TopicName", "QueueName", "FunctionName", "LogGroupName", "Name"}
    for logical_id, resource in resources.items():
        for key, value in resource.get("Properties", {}).items():
            if key in name_keys:
                assert not isinstance(value, str), f"{logical_id}.{key} is hard-coded"


def test_jobs_table_matches_the_contract(resources: dict[str, Any]) -> None:
    table = _props(resources, "JobsTable")
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    gsi, active = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "by_owner"
    assert gsi["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    # The sweeper's sparse index: `active` is written only while a job is non-terminal.
    assert active["IndexName"] == ACTIVE_INDEX
    assert active["KeySchema"][0] == {"AttributeName": "active", "KeyType": "HASH"}
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        "pk": "S",
        "owner": "S",
        "created_at": "S",
        "active": "S",
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_bucket_is_private_encrypted_and_expires_by_prefix(resources: dict[str, Any]) -> None:
    bucket = _props(resources, "MediaBucket")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    condition, with_key, without_key = rule["ServerSideEncryptionByDefault"]["Fn::If"]
    assert condition == "UsesCustomerManagedKey"
    assert with_key == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]}}
    assert without_key == {"SSEAlgorithm": "AES256"}
    expiry = {r.get("Prefix"): r.get("ExpirationInDays") for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert expiry["uploads/"] == 2
    assert expiry["img2img/"] == 7
    assert expiry["outputs/"] == {"Ref": "OutputRetentionDays"}
    assert any(
        r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 1}
        for r in bucket["LifecycleConfiguration"]["Rules"]
    )
    (deny_tls,) = _props(resources, "MediaBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny_tls["Effect"] == "Deny"
    assert deny_tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_browsers_may_only_put_uploads_across_origins(resources: dict[str, Any]) -> None:
    # The playground PUTs to presigned URLs from the API's origin: the preflight asks for PUT
    # with a Content-Type; nothing else (GET of outputs works without CORS, as <img>).
    (rule,) = _props(resources, "MediaBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["PUT"]
    assert [h.lower() for h in rule["AllowedHeaders"]] == ["content-type"]
    assert "ExposedHeaders" not in rule


def test_img2img_uploads_reach_the_trigger_through_a_buffered_queue(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    (notification,) = _props(resources, "MediaBucket")["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Queue"] == {"Fn::GetAtt": ["Img2ImgQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "img2img/"}]
    assert "Img2ImgQueuePolicy" in _as_list(resources["MediaBucket"]["DependsOn"])

    queue = _props(resources, "Img2ImgQueue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["Img2ImgDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    trigger_timeout = int(_function_setting(template, "S3TriggerFunction", "Timeout"))
    assert int(queue["VisibilityTimeout"]) >= 6 * trigger_timeout

    (event,) = _props(resources, "S3TriggerFunction")["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["Img2ImgQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "Img2ImgMaxConcurrency"}}
    assert event["Properties"]["BatchSize"] == {"Ref": "Img2ImgBatchSize"}


def test_queue_policy_names_the_bucket_it_receives_from(resources: dict[str, Any]) -> None:
    # The bucket name is computed in two places (a reference would be a cycle): they must agree.
    (statement,) = _props(resources, "Img2ImgQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arn, source_vars = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bucket_name, bucket_vars = _props(resources, "MediaBucket")["BucketName"]["Fn::Sub"]
    assert source_arn == "arn:${AWS::Partition}:s3:::" + bucket_name
    assert source_vars == bucket_vars


def test_topic_is_encrypted(resources: dict[str, Any]) -> None:
    assert _props(resources, "JobEventsTopic")["KmsMasterKeyId"] == {
        "Fn::If": ["UsesCustomerManagedKey", {"Fn::GetAtt": ["DataKey", "Arn"]}, "alias/aws/sns"]
    }


def test_every_checkov_skip_names_a_check_and_gives_its_reason_in_words() -> None:
    lines = TEMPLATE_PATH.read_text().splitlines()
    resources_at = lines.index("Resources:")
    skips = [(n, CHECKOV_SKIP.search(line)) for n, line in enumerate(lines) if "checkov:skip" in line]
    assert skips, "no checkov:skip at all: the scan would have nothing to explain"
    for n, skip in skips:
        assert skip is not None, f"line {n + 1}: not checkov:skip=ID: reason"
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), f"line {n + 1}: {skip['id']}"
        assert len((skip["reason"] or "").split()) >= 6, f"line {n + 1}: {skip['id']} without a reason"
        # On a resource (checkov reads skips inside a resource's lines), never a section-wide one.
        assert n > resources_at, f"line {n + 1}: outside Resources"
        assert lines[n].startswith("    #"), f"line {n + 1}: not inside a resource"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_reserves_concurrency_from_its_own_parameter(
    template: dict[str, Any], logical_id: str
) -> None:
    name = logical_id.removesuffix("Function")
    param, condition = f"{name}ReservedConcurrency", f"{name}ReservesConcurrency"
    assert _props(template["Resources"], logical_id)["ReservedConcurrentExecutions"] == {
        "Fn::If": [condition, {"Ref": param}, {"Ref": "AWS::NoValue"}]
    }
    # 0 means no reservation (never Lambda's 0, a function that cannot run).
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": param}, 0]}]}
    spec = template["Parameters"][param]
    assert int(spec["MinValue"]) == 0
    assert int(spec["Default"]) >= 1


def test_default_reservations_fit_the_default_account_quota_and_the_img2img_concurrency(
    template: dict[str, Any],
) -> None:
    params = template["Parameters"]
    reserved = [int(params[f"{f.removesuffix('Function')}ReservedConcurrency"]["Default"]) for f in FUNCTIONS]
    assert sum(reserved) + 100 <= ACCOUNT_CONCURRENCY
    # Below the event source's maximum concurrency, SQS batches would be throttled back to the queue.
    trigger = int(params["S3TriggerReservedConcurrency"]["Default"])
    assert trigger >= int(params["Img2ImgMaxConcurrency"]["Default"])


def test_customer_managed_key_encrypts_every_store_of_data_at_rest(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["EncryptionKey"]["Default"] == "aws-managed"
    assert template["Globals"]["Function"]["KmsKeyArn"] == WITH_DATA_KEY
    groups = [k for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"]
    assert all(_props(resources, g)["KmsKeyId"] == WITH_DATA_KEY for g in groups)
    sse = _props(resources, "JobsTable")["SSESpecification"]
    assert sse["KMSMasterKeyId"] == WITH_DATA_KEY
    assert sse["SSEType"] == {"Fn::If": ["UsesCustomerManagedKey", "KMS", {"Ref": "AWS::NoValue"}]}
    for queue in ("Img2ImgQueue", "Img2ImgDeadLetterQueue"):
        # Encrypted either way: SSE-SQS when the stack has no key of its own.
        assert _props(resources, queue)["KmsMasterKeyId"] == WITH_DATA_KEY
        assert _props(resources, queue)["SqsManagedSseEnabled"] == {
            "Fn::If": ["UsesCustomerManagedKey", False, True]
        }
    key = resources["DataKey"]
    assert key["Condition"] == "UsesCustomerManagedKey"
    assert key["DeletionPolicy"] == "Retain"
    assert key["Properties"]["EnableKeyRotation"] is True
    principals = [s["Principal"] for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {"AWS": "*"} not in principals


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_may_use_the_customer_managed_key_only_through_the_services(
    resources: dict[str, Any], logical_id: str
) -> None:
    assert {"Fn::If": ["UsesCustomerManagedKey", {"Ref": "DataKeyUsePolicy"}, {"Ref": "AWS::NoValue"}]} in (
        _props(resources, logical_id)["Policies"]
    )
    for statement in _props(resources, "DataKeyUsePolicy")["PolicyDocument"]["Statement"]:
        assert statement["Resource"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
        assert "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_bucket_is_versioned_and_noncurrent_versions_expire(resources: dict[str, Any]) -> None:
    bucket = _props(resources, "MediaBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = [r for r in bucket["LifecycleConfiguration"]["Rules"] if "NoncurrentVersionExpiration" in r]
    assert "Prefix" not in rule
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    assert rule["ExpiredObjectDeleteMarker"] is True


def test_media_access_logs_are_an_option_into_a_private_expiring_bucket(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["MediaAccessLogs"]["Default"] == "disabled"
    condition, logging, off = _props(resources, "MediaBucket")["LoggingConfiguration"]["Fn::If"]
    assert (condition, off) == ("LogsMediaAccess", {"Ref": "AWS::NoValue"})
    assert logging["DestinationBucketName"] == {"Ref": "MediaAccessLogBucket"}
    logs = resources["MediaAccessLogBucket"]
    assert logs["Condition"] == resources["MediaAccessLogBucketPolicy"]["Condition"] == "LogsMediaAccess"
    assert all(logs["Properties"]["PublicAccessBlockConfiguration"].values())
    (expiry,) = logs["Properties"]["LifecycleConfiguration"]["Rules"]
    assert expiry["ExpirationInDays"] == {"Ref": "LogRetentionDays"}
    allow, deny_tls = _props(resources, "MediaAccessLogBucketPolicy")["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert deny_tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_alarms_watch_the_dlq_the_workflow_and_the_api(resources: dict[str, Any]) -> None:
    def target(value: dict[str, Any]) -> str:
        return value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]

    watched = {
        (r["Properties"]["Namespace"], r["Properties"]["MetricName"], target(dimension["Value"]))
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for dimension in r["Properties"]["Dimensions"]
    }
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Img2ImgDeadLetterQueue") in watched
    assert ("AWS/States", "ExecutionsFailed", "GenerationStateMachine") in watched
    assert ("AWS/Lambda", "Errors", "ApiFunction") in watched


def test_outputs_name_everything_tests_and_tools_need(template: dict[str, Any]) -> None:
    expected = {
        "ApiUrl",
        "TableName",
        "BucketName",
        "TopicArn",
        "StateMachineArn",
        "Img2ImgQueueUrl",
        "Img2ImgDeadLetterQueueUrl",
    } | {f"{logical_id}Name" for logical_id in FUNCTIONS}
    assert expected <= set(template["Outputs"])


def test_the_dashboard_shows_only_metrics_the_functions_emit(template: dict[str, Any]) -> None:
    from fluxrelay.observability import MetricName

    env = template["Globals"]["Function"]["Environment"]["Variables"]
    body = _props(template["Resources"], "OperationsDashboard")["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body.replace("${AWS::Region}", "us-east-1"))["widgets"]
    shown = {}
    for widget in widgets:
        for namespace, name, *dimensions, _options in widget["properties"]["metrics"]:
            assert namespace == env["POWERTOOLS_METRICS_NAMESPACE"]
            assert dimensions[:2] == ["service", env["POWERTOOLS_SERVICE_NAME"]]
            shown.setdefault(name, set()).add(tuple(dimensions[2:]))
    assert set(shown) == {m.value for m in MetricName} - {MetricName.JOBS_SUBMITTED}
    # JobsFinished carries its status: one line per final status.
    from fluxrelay.domain.jobs import TERMINAL

    assert shown["JobsFinished"] == {("status", status.value) for status in TERMINAL}
    assert all(dims == {()} for name, dims in shown.items() if name != "JobsFinished")
