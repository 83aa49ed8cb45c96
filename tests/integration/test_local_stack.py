"""The local stack harness itself: deploy into moto, in-process Lambda, HTTP API emulation.

Most tests use a tiny fixture application (tests/integration/fixtures/stack/) so the harness is
tested independently of the real functions; one test deploys the real template.yaml.
Waits are scaled down (time_scale) and every wait is a bounded poll, never a fixed sleep.
"""

from __future__ import annotations

import base64
import gc
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from fluxrelay_local.apigw import HttpApiEmulator, Route, routes_from_template
from fluxrelay_local.deploy import load_template
from fluxrelay_local.lambdas import EnvironmentConflictError, merged_environment
from fluxrelay_local.stack import LocalStack, LocalStackError, StackConfig

pytestmark = pytest.mark.timeout(60)

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "stack" / "template.yaml"
REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
STACK_JSON_KEYS = {
    "api_url",
    "api_key",
    "aws_endpoint_url",
    "region",
    "bucket",
    "table",
    "topic_arn",
    "state_machine_arn",
    "upstream_url",
    "img2img_queue_url",
    "dlq_url",
    "functions",
}


def fixture_config(tmp_path: Path, **overrides: Any) -> StackConfig:
    values: dict[str, Any] = {
        "api_port": 0,
        "upstream_port": 0,
        "aws_port": 0,
        "template": FIXTURE_TEMPLATE,
        "state_dir": tmp_path / ".local",
        # A "real" key with no stand-in: the fixture functions never call upstream, and this
        # exercises the Secrets Manager secret the deploy creates from it.
        "wavespeed_api_key": "fixture-wavespeed-key",
        "standin": False,
        "time_scale": 0.001,
    }
    values.update(overrides)
    return StackConfig(**values)


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def poll(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on `port` (SO_REUSEADDR like every server here: closed
    connections may linger in TIME_WAIT after a clean stop, a listening socket may not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_stop_frees_every_port_and_is_idempotent(tmp_path: Path) -> None:
    # Given a started stack with the stand-in
    stack = LocalStack(fixture_config(tmp_path, wavespeed_api_key=None, standin=True))
    stack.start()
    ports = [
        int(url.rsplit(":", 1)[1]) for url in (stack.api_url, stack.aws_endpoint_url, stack.upstream_url)
    ]
    assert not any(port_is_free(p) for p in ports)
    assert json.loads(stack.state_file.read_text())["upstream_url"] == stack.upstream_url
    assert gc.get_freeze_count() > 0  # what it loaded is left out of garbage collections

    # When it is stopped twice
    stack.stop()
    stack.stop()

    # Then every port can be listened on again, and what it held can be collected
    assert [p for p in ports if not port_is_free(p)] == []
    assert gc.get_freeze_count() == 0


def test_only_one_stack_runs_per_process(tmp_path: Path) -> None:
    with LocalStack(fixture_config(tmp_path)), pytest.raises(LocalStackError, match="another LocalStack"):
        LocalStack(fixture_config(tmp_path / "second")).start()


class TestFixtureStack:
    @pytest.fixture(scope="class")
    def stack(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
        with LocalStack(fixture_config(tmp_path_factory.mktemp("stack"))) as running:
            yield running

    # --- deploy -------------------------------------------------------------------------------
    def test_template_deploys_into_moto(self, stack: LocalStack) -> None:
        names = {f["FunctionName"] for f in stack.client("lambda").list_functions()["Functions"]}
        assert set(stack.functions.values()) <= names
        assert set(stack.functions) == {"EchoFunction", "AuthFunction", "TaskFunction", "TriggerFunction"}
        stack.client("dynamodb").describe_table(TableName=stack.table)
        stack.client("s3").head_bucket(Bucket=stack.bucket)
        definition = stack.client("stepfunctions").describe_state_machine(
            stateMachineArn=stack.state_machine_arn
        )["definition"]
        assert stack.deployed is not None
        assert stack.deployed.functions["TaskFunction"].arn in definition
        assert "${" not in definition
        secret = stack.client("secretsmanager").get_secret_value(SecretId="fixture/wavespeed-api-key")
        assert secret["SecretString"] == "fixture-wavespeed-key"

    def test_functions_share_the_resolved_environment(self, stack: LocalStack) -> None:
        env = stack.invoke("EchoFunction", {"rawPath": "/env"})
        body = json.loads(env["body"])
        assert body["greeting"] == "hello"
        assert stack.deployed is not None
        assert stack.deployed.functions["EchoFunction"].environment["TABLE_NAME"] == stack.table

    def test_stack_json_has_every_key(self, stack: LocalStack) -> None:
        info = json.loads(stack.state_file.read_text())
        assert set(info) >= STACK_JSON_KEYS
        assert info["api_url"] == stack.api_url
        assert info["api_key"] == stack.api_key
        assert info["api_key"].startswith("fr_")
        assert info["img2img_queue_url"].endswith(
            "Img2ImgQueue-" + info["img2img_queue_url"].rsplit("-", 1)[1]
        )
        assert "DeadLetter" in info["dlq_url"]
        assert info["functions"]["TaskFunction"] == stack.functions["TaskFunction"]
        # Every value is usable as it is: the emulated API's own URL, nothing left unsubstituted.
        assert info["outputs"]["ApiUrl"] == stack.api_url
        assert "${" not in stack.state_file.read_text()

    # --- HTTP API -----------------------------------------------------------------------------
    def test_request_reaches_handler_as_payload_v2_event_and_response_maps_back(
        self, stack: LocalStack
    ) -> None:
        # When
        status, headers, raw = http(
            "POST",
            f"{stack.api_url}/items/42?a=1&a=2&b=",
            body=b'{"x": 1}',
            headers={
                "Authorization": "Bearer good",
                "Content-Type": "application/json",
                "Cookie": "session=abc; theme=dark",
                "X-Custom": "v1",
            },
        )

        # Then the response maps back
        assert status == 201
        assert headers["x-fixture"] == "echo"
        assert headers.get_all("set-cookie") == ["a=1", "b=2"]
        answer = json.loads(raw)
        event = answer["event"]
        # ... and the function saw a payload 2.0 event
        assert event["version"] == "2.0"
        assert event["routeKey"] == "POST /items/{id}"
        assert event["rawPath"] == "/items/42"
        assert event["rawQueryString"] == "a=1&a=2&b="
        assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
        assert event["pathParameters"] == {"id": "42"}
        assert event["cookies"] == ["session=abc", "theme=dark"]
        assert "cookie" not in event["headers"]
        assert event["headers"]["x-custom"] == "v1"
        assert event["headers"]["authorization"] == "Bearer good"
        assert event["body"] == '{"x": 1}'
        assert event["isBase64Encoded"] is False
        context = event["requestContext"]
        assert context["http"]["method"] == "POST"
        assert context["http"]["path"] == "/items/42"
        assert context["stage"] == "$default"
        assert context["routeKey"] == "POST /items/{id}"
        assert context["domainName"] == stack.api_url.removeprefix("http://")
        assert isinstance(context["timeEpoch"], int)
        # the authorizer's context reaches the function
        assert context["authorizer"] == {"lambda": {"owner": "alice", "route": "POST /items/{id}"}}
        assert answer["function_name"] == stack.functions["EchoFunction"]
        assert 0 < answer["remaining_ms"] <= 10_000

    def test_binary_request_body_is_base64_encoded(self, stack: LocalStack) -> None:
        payload = bytes(range(256))
        status, _, raw = http(
            "POST",
            f"{stack.api_url}/items/bin",
            body=payload,
            headers={"Authorization": "Bearer good", "Content-Type": "image/png"},
        )
        event = json.loads(raw)["event"]
        assert status == 201
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == payload

    def test_base64_response_is_decoded_on_a_public_route(self, stack: LocalStack) -> None:
        before = stack.runner.invocations["AuthFunction"] if stack.runner else 0
        status, headers, raw = http("GET", f"{stack.api_url}/public/files/binary")
        assert status == 200
        assert headers["content-type"] == "image/png"
        assert raw == b"\x89PNG\r\n\x1a\nfixture"
        assert stack.runner is not None
        assert stack.runner.invocations["AuthFunction"] == before

    def test_bare_dict_answer_is_inferred_as_200_json(self, stack: LocalStack) -> None:
        status, headers, raw = http("GET", f"{stack.api_url}/public/bare")
        assert (status, headers["content-type"], json.loads(raw)) == (200, "application/json", {"bare": True})

    def test_missing_identity_header_is_401_without_invoking_the_authorizer(self, stack: LocalStack) -> None:
        assert stack.runner is not None
        before = stack.runner.invocations["AuthFunction"]
        status, _, raw = http("POST", f"{stack.api_url}/items/1", body=b"{}")
        assert (status, json.loads(raw)) == (401, {"message": "Unauthorized"})
        assert stack.runner.invocations["AuthFunction"] == before

    def test_authorizer_denial_is_403(self, stack: LocalStack) -> None:
        status, _, raw = http("POST", f"{stack.api_url}/items/1", body=b"{}", headers={"Authorization": "no"})
        assert (status, json.loads(raw)) == (403, {"message": "Forbidden"})

    @pytest.mark.parametrize(
        ("method", "path"), [("GET", "/nope"), ("GET", "/items/1"), ("POST", "/public/x")]
    )
    def test_unknown_route_is_404(self, stack: LocalStack, method: str, path: str) -> None:
        status, _, raw = http(method, stack.api_url + path, headers={"Authorization": "Bearer good"})
        assert (status, json.loads(raw)) == (404, {"message": "Not Found"})

    def test_payload_over_10_mb_is_413(self, stack: LocalStack) -> None:
        status, _, raw = http(
            "POST",
            f"{stack.api_url}/items/1",
            body=b"x" * (10 * 1024 * 1024 + 1),
            headers={"Authorization": "Bearer good", "Content-Type": "text/plain"},
        )
        assert (status, json.loads(raw)) == (413, {"message": "Request Entity Too Large"})

    def test_event_over_lambdas_6_mb_quota_is_413(self, stack: LocalStack) -> None:
        # 5 MB of binary is under API Gateway's 10 MB but 6.7 MB once base64-encoded in the event.
        status, _, raw = http(
            "POST",
            f"{stack.api_url}/items/1",
            body=b"\x00" * (5 * 1024 * 1024),
            headers={"Authorization": "Bearer good", "Content-Type": "image/png"},
        )
        assert (status, json.loads(raw)) == (413, {"message": "Request Entity Too Large"})

    # --- Lambda errors and Step Functions -----------------------------------------------------
    def test_raising_handler_yields_the_lambda_error_shape(self, stack: LocalStack) -> None:
        response = stack.client("lambda").invoke(
            FunctionName=stack.functions["TaskFunction"], Payload=json.dumps({"action": "boom"})
        )
        error = json.loads(response["Payload"].read())
        assert response["FunctionError"]
        assert error["errorType"] == "FixtureBoomError"
        assert error["errorMessage"] == "the fixture task was asked to fail"
        assert isinstance(error["stackTrace"], list)
        assert error["stackTrace"]

    def test_direct_invoke_propagates_the_exception(self, stack: LocalStack) -> None:
        with pytest.raises(Exception, match="asked to fail") as caught:
            stack.invoke("TaskFunction", {"action": "boom"})
        assert type(caught.value).__name__ == "FixtureBoomError"

    def test_execution_runs_the_in_process_task_to_succeeded(self, stack: LocalStack) -> None:
        sfn = stack.client("stepfunctions")
        # wait_seconds=30 proves the time scale: the Wait state takes 30 ms here.
        execution = sfn.start_execution(
            stateMachineArn=stack.state_machine_arn,
            name="ok-run",
            input=json.dumps({"wait_seconds": 30, "action": "ok"}),
        )
        described = stack.wait_for_execution(execution["executionArn"], timeout=10)
        assert described["status"] == "SUCCEEDED"
        output = json.loads(described["output"])
        assert output["worked"] is True
        assert output["function_name"] == stack.functions["TaskFunction"]

    def test_catch_matches_the_exception_class_name(self, stack: LocalStack) -> None:
        sfn = stack.client("stepfunctions")
        execution = sfn.start_execution(
            stateMachineArn=stack.state_machine_arn,
            name="boom-run",
            input=json.dumps({"wait_seconds": 0, "action": "boom"}),
        )
        described = stack.wait_for_execution(execution["executionArn"], timeout=10)
        assert described["status"] == "SUCCEEDED"
        output = json.loads(described["output"])
        assert output["outcome"] == "recovered"
        assert output["error"]["Error"] == "FixtureBoomError"
        assert json.loads(output["error"]["Cause"])["errorType"] == "FixtureBoomError"

    # --- S3 → SQS → Lambda --------------------------------------------------------------------
    def test_s3_put_under_img2img_reaches_the_sqs_triggered_function(self, stack: LocalStack) -> None:
        s3 = stack.client("s3")
        dynamodb = stack.client("dynamodb")
        s3.put_object(Bucket=stack.bucket, Key="uploads/ignored.png", Body=b"x")
        s3.put_object(Bucket=stack.bucket, Key="img2img/photo 1.png", Body=b"x")

        def seen() -> list[str]:
            items = dynamodb.scan(TableName=stack.table)["Items"]
            # S3 URL-encodes keys in event notifications (moto also encodes "/").
            return [
                unquote_plus(i["pk"]["S"].removeprefix("SEEN#"))
                for i in items
                if i["pk"]["S"].startswith("SEEN#")
            ]

        assert poll(seen) == ["img2img/photo 1.png"]


# --- pure emulator behaviour (no stack) -------------------------------------------------------
def test_integration_timeout_is_503() -> None:
    routes = routes_from_template(load_template(FIXTURE_TEMPLATE))
    release = __import__("threading").Event()

    def slow(logical_id: str, event: Any) -> tuple[str, bool, str]:
        release.wait(5)
        return "{}", False, ""

    emulator = HttpApiEmulator(routes, slow, region="us-east-1", integration_timeout=0.2)
    port = emulator.start("127.0.0.1", 0)
    try:
        status, _, raw = http("GET", f"http://127.0.0.1:{port}/public/x")
    finally:
        release.set()
        emulator.stop()
    assert (status, json.loads(raw)) == (503, {"message": "Service Unavailable"})


def test_routes_prefer_the_most_specific_match() -> None:
    routes = routes_from_template(load_template(FIXTURE_TEMPLATE))
    assert [(r.route_key, r.authorizer is not None) for r in routes] == [
        ("POST /items/{id}", True),
        ("GET /public/{proxy+}", False),
    ]
    assert all(isinstance(r, Route) for r in routes)


def test_conflicting_function_environments_fail_loudly() -> None:
    from fluxrelay_local.deploy import FunctionInfo

    def fn(logical_id: str, env: dict[str, str]) -> FunctionInfo:
        return FunctionInfo(logical_id, logical_id, "arn", Path("."), "app.handler", 3, 128, env)

    with pytest.raises(EnvironmentConflictError, match="LEVEL"):
        merged_environment({"A": fn("A", {"LEVEL": "INFO"}), "B": fn("B", {"LEVEL": "DEBUG"})})


@pytest.mark.skipif(not REAL_TEMPLATE.is_file(), reason="template.yaml not written yet")
def test_real_template_deploys_with_routes_workflow_and_img2img_wiring(tmp_path: Path) -> None:
    config = StackConfig(
        api_port=0,
        upstream_port=0,
        aws_port=0,
        template=REAL_TEMPLATE,
        state_dir=tmp_path / ".local",
        time_scale=0.001,
        standin_options={"seconds_per_image": 0.01},
    )
    with LocalStack(config) as stack:
        info = json.loads(stack.state_file.read_text())
        assert set(info) >= STACK_JSON_KEYS
        assert all(info[k] for k in STACK_JSON_KEYS)
        assert stack.deployed is not None
        template_functions = {
            lid
            for lid, r in stack.deployed.sam_template["Resources"].items()
            if r["Type"] == "AWS::Serverless::Function"
        }
        assert set(stack.functions) == template_functions
        definition = stack.client("stepfunctions").describe_state_machine(
            stateMachineArn=stack.state_machine_arn
        )["definition"]
        assert "${" not in definition
        notification = stack.client("s3").get_bucket_notification_configuration(Bucket=stack.bucket)
        assert notification["QueueConfigurations"][0]["QueueArn"].endswith(
            info["img2img_queue_url"].rsplit("/", 1)[1]
        )
        assert stack.api is not None
        assert any(r.authorizer is None for r in stack.api.routes)
        secret = stack.client("secretsmanager").get_secret_value(
            SecretId=stack.deployed.parameters["WaveSpeedSecretName"]
        )
        assert secret["SecretString"].startswith("standin_")
        assert stack.deployed.parameters["WaveSpeedBaseUrl"] == stack.upstream_url
        assert stack.deployed.parameters["UrlPolicy"] == "development"
