"""The local stack behaves like a service: its data survives a restart, a taken port is one clear
error, and SIGTERM/SIGINT stop it cleanly at any moment (start-up included).

`make run` is `python -m fluxrelay_local`; the signal and port tests run exactly that, as a
subprocess in a scratch folder, and wait on its output with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aws_lambda_powertools import Metrics

from fluxrelay_local.deploy import FunctionInfo
from fluxrelay_local.lambdas import LambdaRunner
from tests.support.stack import (
    WebhookReceiver,
    api_for,
    job_item,
    sns_events_for,
    sns_queue,
    standin_of,
    start_stack,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


# --------------------------------------------------------------------------- persistence
def test_keys_jobs_outputs_webhook_secrets_and_jobs_in_flight_survive_a_restart(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        # Given: a stack with a second key, a finished job, a webhook secret and a job still
        # running upstream (its task holds until the test ends it: it cannot end before the stop)
        stack = start_stack(tmp_path)
        try:
            dev_key = stack.api_key
            alice = api_for(stack, "alice")
            done = alice.submit({"prompt": "kept [persist]", "size": "256*256"}).json()["data"]["id"]
            finished = alice.wait_finished(done)
            image = httpx.get(finished["outputs"][0]).content
            secret = alice.get("/api/v3/webhook/secret").json()["data"]["secret"]
            upstream_secret = standin_of(stack).webhook_secret
            hanging = {"prompt": "still going [hang]", "size": "256*256"}
            running = alice.submit(hanging, webhook=receiver.url).json()["data"]["id"]
            task_id = wait_for(lambda: (job_item(stack, running) or {}).get("upstream_id"), what="its task")
            assert standin_of(stack).task(task_id).status == "processing"
            assert stack.state_file.is_file()
        finally:
            stack.stop()
        # The description of a running stack goes with it; the data stays.
        assert not stack.state_file.exists()
        assert (tmp_path / ".local" / "state" / "state.json").is_file()

        # When: the stack starts again from the same folder (on new ports)
        again = start_stack(tmp_path)
        try:
            # Then: the same dev key, alice's key, her job with its stored image, her webhook secret
            assert again.api_key == dev_key
            alice.base_url = again.api_url
            kept = alice.result(done).json()["data"]
            assert (kept["status"], len(kept["outputs"])) == ("completed", 1)
            assert httpx.get(kept["outputs"][0]).content == image
            assert alice.get("/api/v3/webhook/secret").json()["data"]["secret"] == secret
            # and the job in flight resumed: the stand-in still has its task and its signing
            # secret, the job's workflow runs again and waits for the task.
            upstream = standin_of(again)
            assert upstream.webhook_secret == upstream_secret
            assert upstream.task(task_id).status == "processing"
            with sns_queue(again) as drain:
                upstream.finish(task_id)
                delivery = receiver.wait_for_job(running, timeout=60)
                arn = (job_item(again, running) or {})["execution_arn"]
                assert again.wait_for_execution(arn, timeout=60)["status"] == "SUCCEEDED"
                assert alice.result(running).json()["data"]["status"] == "completed"
                assert len(wait_for(lambda: sns_events_for(drain, running), what="its SNS message")) == 1
                # Its restored item names the running workflow: the sweeper finds nothing to do.
                swept = again.invoke("SweepJobsFunction", {"source": "aws.events", "detail": {}})
                assert swept["resumed"] == 0
                # The task's webhook reached the restarted API at its new address, and verified.
                pushes = [d for d in upstream.webhook_deliveries if d["task_id"] == task_id]
                assert [d["status"] for d in pushes] == [200]
                assert len(sns_events_for(drain, running)) == 1
            deliveries = [d for d in receiver.deliveries if d.json()["id"] == running]
            assert [d.headers["Webhook-Id"] for d in deliveries] == [delivery.headers["Webhook-Id"]]
        finally:
            again.stop()


# --------------------------------------------------------------------------- the functions' runtime
HANDLER = """
from aws_lambda_powertools import Metrics

metrics = Metrics()  # no namespace: as when built before the functions' environment was set


@metrics.log_metrics
def handler(event, context):
    metrics.add_metric(name="Calls", unit="Count", value=1)
    return {"ok": True}
"""


def test_a_long_running_stack_does_not_pile_up_unpublished_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Locally metrics are disabled, and Powertools then keeps them; at 100 it would try to
    # serialise them and fail the handler. Each invocation must end with its metrics gone.
    (tmp_path / "app.py").write_text(HANDLER)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    fn = FunctionInfo(
        "Fn", "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", tmp_path, "app.handler", 3, 128, {}
    )
    runner = LambdaRunner({"Fn": fn}, region="us-east-1")
    assert [runner.invoke("Fn", {}) for _ in range(150)] == [{"ok": True}] * 150


def test_an_invocation_does_not_drop_metrics_another_thread_has_not_flushed_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Handlers run as threads of one process and share Powertools' metric set. With metrics on,
    # each `log_metrics` flushes what it added; the end of one invocation must not clear metrics
    # another invocation added and is about to flush.
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    fn = FunctionInfo(
        "Fn", "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", tmp_path, "app.handler", 3, 128, {}
    )
    runner = LambdaRunner({"Fn": fn}, region="us-east-1")
    pending = Metrics(namespace="Test")
    pending.add_metric(name="AddedByAnotherInvocation", unit="Count", value=1)
    try:
        assert runner.invoke("Fn", {}) == {"ok": True}
        assert "AddedByAnotherInvocation" in pending.metric_set
    finally:
        pending.clear_metrics()


# --------------------------------------------------------------------------- make run as a process
class Service:
    """`python -m fluxrelay_local` in `folder`, its output read line by line as it comes."""

    def __init__(self, folder: Path, **ports: int) -> None:
        env = {**os.environ, "API_PORT": "0", "UPSTREAM_PORT": "0", "AWS_PORT": "0"}
        env.update({name: str(port) for name, port in ports.items()})
        for leaked in ("AWS_ENDPOINT_URL", "MOTO_PORT"):  # this test process's own stack, if any
            env.pop(leaked, None)
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fluxrelay_local"],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output: list[str] = []
        self._changed = threading.Condition()
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                self.output.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_output(self, probe: Callable[[str], bool], timeout: float = 90) -> str:
        with self._changed:
            found: list[str] = []

            def seen() -> bool:
                found[:] = [line for line in self.output if probe(line)]
                return bool(found) or self.process.poll() is not None

            self._changed.wait_for(seen, timeout)
            assert found, f"no such line within {timeout}s; output: {self.output}"
            return found[0]

    def stop(self, signum: int, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_a_port_in_use_is_one_clear_error_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = Service(tmp_path, API_PORT=port)
        try:
            code = service.process.wait(timeout=60)
        finally:
            service.kill()
    assert code == 2
    assert not any("Traceback" in line for line in service.output)
    errors = [line for line in service.output if line.startswith("error:")]
    assert errors == [
        f"error: port {port} is in use (API_PORT): stop what listens there, "
        f"or choose another port, e.g. API_PORT={port + 100} make run"
    ]


def test_sigterm_during_start_up_stops_cleanly(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        # The template is being deployed into the emulated AWS: the middle of start-up.
        service.wait_output(lambda line: "CloudFormation skips" in line)
        code = service.stop(signal.SIGTERM)
    finally:
        service.kill()
    assert code == 0
    assert not any("Traceback" in line for line in service.output)
    assert not (tmp_path / ".local" / "stack.json").exists()
    # Nothing complete was running, so nothing is saved over an earlier snapshot.
    assert not (tmp_path / ".local" / "state").exists()


def test_ctrl_c_on_a_running_stack_saves_its_data_and_removes_stack_json(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.wait_output(lambda line: "fluxrelay local stack ready" in line)
        info = json.loads((tmp_path / ".local" / "stack.json").read_text())
        api_line = service.wait_output(lambda line: line.strip().startswith("API "))
        assert api_line.split()[-1] == info["api_url"]
        assert httpx.get(f"{info['api_url']}/health").status_code == 200
        started = time.monotonic()
        code = service.stop(signal.SIGINT)
    finally:
        service.kill()
    assert code == 0, service.output
    assert time.monotonic() - started < 60
    assert not (tmp_path / ".local" / "stack.json").exists()
    saved = json.loads((tmp_path / ".local" / "state" / "state.json").read_text())
    assert saved["dev_key"] == info["api_key"]
