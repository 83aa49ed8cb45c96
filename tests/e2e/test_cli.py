"""The `fluxrelay` command through its installed console script, against the local stack.

Each command runs as a subprocess in the folder that holds the stack's `.local/stack.json`, so it
finds the stack by itself as it does for a user. Waiting on a running command is a bounded poll
of its output, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, WebhookReceiver, api_for, end_hanging_job, standin_of

pytestmark = pytest.mark.e2e

FLUXRELAY = shutil.which("fluxrelay", path=str(Path(sys.executable).parent))
assert FLUXRELAY, "the fluxrelay console script is not installed (make install)"


# The command under test is the venv's own console script, never user input.
def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [FLUXRELAY, *args],
        cwd=cwd,
        env=cli_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXRELAY_")}
    return {**env, **(extra or {})}


class Running:
    """A command left running; its output lines are read as they come."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [FLUXRELAY, *args],
            cwd=cwd,
            env=cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._new: queue.Queue[None] = queue.Queue()
        for name in self.lines:
            threading.Thread(target=self._read, args=(name,), daemon=True).start()

    def _read(self, name: str) -> None:
        stream = getattr(self.process, name)
        for line in stream:
            self.lines[name].append(line.rstrip("\n"))
            self._new.put(None)

    def wait_line(self, name: str, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.lines[name] if text in line), None)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} line with {text!r} within {timeout}s: {self.lines}")
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=left)

    def stop(self, signum: int = signal.SIGTERM, stdin: str = "") -> int:
        self.process.send_signal(signum)
        if stdin and self.process.stdin:
            self.process.stdin.write(stdin)
            self.process.stdin.flush()
        return self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def home(stack: LocalStack) -> Path:
    """The folder a user would run the command in: the one holding .local/stack.json."""
    return stack.state_file.parent.parent


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (320, 320), "teal").save(path)
    return path


def free_port() -> int:
    """A port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --------------------------------------------------------------------------- generate
def test_generate_uploads_the_image_follows_the_job_and_saves_its_images(
    stack: LocalStack, home: Path, photo: Path, tmp_path: Path
) -> None:
    # When
    result = run(
        "generate",
        "a teal lighthouse [cli-generate]",
        "--lora",
        "alvdansen/frosting_lane_flux:0.8",
        "--size",
        "256x320",
        "--num-images",
        "2",
        "--seed",
        "7",
        "--format",
        "png",
        "--image",
        str(photo),
        "--strength",
        "0.5",
        "--out",
        str(tmp_path / "out"),
        cwd=home,
    )

    # Then: the paths of two real PNGs of the asked size, and the progress lines on stderr
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.split()]
    assert len(paths) == 2
    for path in paths:
        with Image.open(path) as image:
            assert (image.format, image.size) == ("PNG", (256, 320))
    assert "created" in result.stderr
    assert "completed" in result.stderr
    # The upstream got the uploaded file's URL (in our bucket) and every parameter.
    sent = next(s for s in standin_of(stack).submissions if "[cli-generate]" in s["input"]["prompt"])
    assert sent["input"]["image"].startswith(stack.aws_endpoint_url)
    assert f"/uploads/{stack.config.dev_key_owner}/" in sent["input"]["image"]
    assert sent["input"]["loras"] == [{"path": "alvdansen/frosting_lane_flux", "scale": 0.8}]
    assert (sent["input"]["seed"], sent["input"]["strength"], sent["input"]["num_images"]) == (7, 0.5, 2)


def test_generate_json_reports_the_prediction_and_the_receiver_verifies_its_webhook(
    home: Path, tmp_path: Path
) -> None:
    receiver = Running("receiver", "--port", "0", "--json", cwd=home)
    try:
        url = receiver.wait_line("stderr", "listening on").split()[2]

        # When
        result = run(
            "generate", "a signed lighthouse", "--size", "256*256", "--webhook", url, "--json",
            "--out", str(tmp_path), cwd=home,
        )  # fmt: skip

        # Then: JSON on stdout with the saved file, and the receiver printed the verified delivery
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        job_id = report["prediction"]["id"]
        assert report["prediction"]["status"] == "completed"
        assert [Path(f).name for f in report["files"]] == [f"{job_id}-0.jpeg"]
        seen = json.loads(receiver.wait_line("stdout", job_id))
        assert seen["verified"] is True
        assert seen["payload"]["status"] == "completed"

        # A forged delivery is refused (401) and shown as such.
        forged = httpx.post(
            url,
            content=b'{"id": "forged"}',
            headers={
                "webhook-id": "msg_forged",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,AAAA",
            },
        )
        assert forged.status_code == 401
        assert json.loads(receiver.wait_line("stdout", "msg_forged"))["verified"] is False
    finally:
        code = receiver.stop(signal.SIGTERM)
    assert code == 0
    assert "Traceback" not in "\n".join(receiver.lines["stderr"])


def test_ctrl_c_leaves_the_job_running(stack: LocalStack, home: Path, tmp_path: Path) -> None:
    running = Running("generate", "forever [hang]", "--size", "256*256", cwd=home)
    job_id = running.wait_line("stderr", "processing").split()[0]

    # When: Ctrl-C, then "no" to the question
    code = running.stop(signal.SIGINT, stdin="n\n")

    # Then
    assert code == 130
    running.wait_line("stderr", f"Cancel job {job_id}?")
    assert running.wait_line("stderr", "left running").endswith(f"fluxrelay jobs watch {job_id}")
    dev = Api(stack.api_url, stack.api_key)
    assert dev.result(job_id).json()["data"]["status"] == "processing"
    # It goes on to its end, which `jobs watch` reports with a non-zero exit.
    end_hanging_job(stack, dev, job_id)
    watched = run("jobs", "watch", job_id, cwd=home)
    assert watched.returncode == 1
    assert f"error: job {job_id} timeout" in watched.stderr


def test_ctrl_c_cancels_the_job_when_asked(stack: LocalStack, home: Path) -> None:
    running = Running("generate", "cancel me [hang]", "--size", "256*256", cwd=home)
    job_id = running.wait_line("stderr", "processing").split()[0]

    # When: Ctrl-C, then "y" to the question
    code = running.stop(signal.SIGINT, stdin="y\n")

    # Then: the job is cancelled, and the command says so
    assert code == 130
    assert running.wait_line("stderr", f"{job_id}  cancelled")
    dev = Api(stack.api_url, stack.api_key)
    assert dev.result(job_id).json()["data"]["status"] == "cancelled"
    assert "Traceback" not in "\n".join(running.lines["stderr"])


# --------------------------------------------------------------------------- jobs
def test_jobs_list_filters_and_pages_through_the_owners_history(stack: LocalStack, home: Path) -> None:
    # Given an owner of their own with three completed jobs and a failed one
    dave = api_for(stack, "dave")
    as_dave = {"FLUXRELAY_API_KEY": str(dave.key)}
    prompts = ["one boat", "two boats", "three boats", "a sinking boat [fail]"]
    ids = [dave.submit({"prompt": p, "size": "256*256"}).json()["data"]["id"] for p in prompts]
    ended = {job_id: dave.wait_finished(job_id)["status"] for job_id in ids}
    assert list(ended.values()) == ["completed"] * 3 + ["failed"]

    def listed(*args: str) -> dict[str, Any]:
        result = run("jobs", "list", *args, "--json", cwd=home, env=as_dave)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    # Every job, newest first, and nothing of anyone else
    everything = listed()
    assert [p["id"] for p in everything["items"]] == ids[::-1]
    assert everything["next_cursor"] is None
    # Filters
    assert [p["id"] for p in listed("--status", "failed")["items"]] == [ids[3]]
    assert listed("--created-after", "2999-01-01")["items"] == []
    assert len(listed("--created-before", "2999-01-01T00:00:00Z")["items"]) == 4
    # Pages: --limit, then --cursor from where the first page stopped; --all follows them all
    first = listed("--limit", "3")
    assert [p["id"] for p in first["items"]] == ids[:0:-1]
    rest = listed("--limit", "3", "--cursor", first["next_cursor"])
    assert [p["id"] for p in rest["items"]] == ids[:1]
    assert [p["id"] for p in listed("--limit", "1", "--all")["items"]] == ids[::-1]

    # The table names each job and its status, and says how to go on
    table = run("jobs", "list", "--limit", "3", cwd=home, env=as_dave)
    assert table.returncode == 0, table.stderr
    for job_id, status in list(ended.items())[1:]:
        assert any(job_id in line and status in line for line in table.stdout.splitlines())
    assert ids[0] not in table.stdout
    assert f"--cursor {first['next_cursor']}" in table.stderr
    # Bad filters are the API's one-line 400
    bad_status = one_line_error(run("jobs", "list", "--status", "lost", cwd=home, env=as_dave))
    assert bad_status.startswith("error: 400: status must be one of")
    bad_time = one_line_error(run("jobs", "list", "--created-after", "yesterday", cwd=home, env=as_dave))
    assert bad_time.startswith("error: 400: created_after must be an ISO 8601")


def test_jobs_cancel_prints_the_new_status_and_refuses_a_finished_job(stack: LocalStack, home: Path) -> None:
    dev = Api(stack.api_url, stack.api_key)
    job_id = dev.submit({"prompt": "never ends [hang]", "size": "256*256"}).json()["data"]["id"]

    # When
    cancelled = run("jobs", "cancel", job_id, cwd=home)

    # Then
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"{job_id}  cancelled")
    assert dev.result(job_id).json()["data"]["status"] == "cancelled"
    # A second cancel: the job has ended, which is one line and exit code 1
    again = run("jobs", "cancel", job_id, "--json", cwd=home)
    assert again.returncode == 1
    assert one_line_error(again) == (
        f"error: could not cancel job {job_id}: 409: "
        "the prediction has already ended: its status is cancelled"
    )
    assert again.stdout == ""
    assert "404" in one_line_error(run("jobs", "cancel", "0" * 32, cwd=home))


def test_jobs_show_and_watch_a_finished_job(stack: LocalStack, home: Path, tmp_path: Path) -> None:
    submitted = run(
        "generate", "a small boat", "--size", "256*256", "--json", "--out", str(tmp_path), cwd=home
    )
    job_id = json.loads(submitted.stdout)["prediction"]["id"]

    shown = run("jobs", "show", job_id, "--json", cwd=home)
    table = run("jobs", "show", job_id, cwd=home)
    watched = run("jobs", "watch", job_id, cwd=home)

    assert shown.returncode == 0
    assert json.loads(shown.stdout)["status"] == "completed"
    assert "output 0" in table.stdout
    assert watched.returncode == 0
    assert watched.stdout.startswith(f"{stack.aws_endpoint_url}/")
    assert f"/outputs/{job_id}/0.jpeg?" in watched.stdout


def test_a_failed_job_ends_with_its_error_and_exits_non_zero(home: Path) -> None:
    result = run("generate", "this one fails [fail]", "--size", "256*256", cwd=home)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    *progress, last = result.stderr.strip().splitlines()
    assert "failed" in progress[-1]
    assert last.startswith("error: job ")
    assert " failed: " in last


# --------------------------------------------------------------------------- keys
def test_keys_create_list_and_revoke_on_the_local_stack(stack: LocalStack, home: Path) -> None:
    created = run("keys", "create", "--owner", "carol", "--rpm", "7", "--json", cwd=home)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    # The key works against the API.
    secret = httpx.get(
        f"{stack.api_url}/api/v3/webhook/secret", headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert secret.status_code == 200

    listed = json.loads(run("keys", "list", "--owner", "carol", "--json", cwd=home).stdout)
    assert [(k["key_id"], k["status"], k["requests_per_minute"]) for k in listed] == [
        (key["key_id"], "active", 7)
    ]
    assert all("key" not in k and "key_hash" not in k for k in listed)

    revoked = run("keys", "revoke", key["key_id"], cwd=home)
    assert revoked.returncode == 0, revoked.stderr
    listed = json.loads(run("keys", "list", "--owner", "carol", "--json", cwd=home).stdout)
    assert [k["status"] for k in listed] == ["revoked"]
    assert "no such API key" in one_line_error(run("keys", "revoke", "000000000000", cwd=home))


def test_keys_on_a_deployed_stack_find_the_table_through_cloudformation(
    stack: LocalStack, home: Path
) -> None:
    # The local stack is a real CloudFormation stack in moto: `--stack-name` takes the path a
    # deployed stack takes (DescribeStacks → TableName output), only the endpoint differs.
    aws = {
        "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    deployed = ("--stack-name", stack.config.stack_name, "--region", stack.config.region)
    created = run("keys", "create", "--owner", "erin", *deployed, "--json", cwd=home, env=aws)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    listed = json.loads(run("keys", "list", "--owner", "erin", *deployed, "--json", cwd=home, env=aws).stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    missing = run("keys", "list", "--stack-name", "no-such-stack", "--region", "us-east-1", cwd=home, env=aws)
    assert "does not exist" in one_line_error(missing)


# --------------------------------------------------------------------------- webhooks
def generated(home: Path, out: Path, prompt: str, webhook: str | None = None) -> dict[str, object]:
    hook = ["--webhook", webhook] if webhook else []
    result = run("generate", prompt, "--size", "256*256", *hook, "--json", "--out", str(out), cwd=home)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["prediction"])


def test_webhooks_log_shows_the_attempts_and_redeliver_sends_one_job_again(
    home: Path, tmp_path: Path
) -> None:
    with WebhookReceiver() as hook:
        job_id = str(generated(home, tmp_path, "a logged kite", hook.url)["id"])
        first = hook.wait_for_job(job_id)

        replayed = run("webhooks", "redeliver", job_id, cwd=home)
        as_json = run("webhooks", "log", job_id, "--json", cwd=home)
        table = run("webhooks", "log", job_id, cwd=home)

    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith(f"{job_id}: delivered (HTTP 200, ")
    again = [d for d in hook.deliveries if d.json().get("id") == job_id]
    assert len(again) == 2
    assert again[1].headers["Webhook-Id"] == first.headers["Webhook-Id"] == f"msg_{job_id}"
    log = json.loads(as_json.stdout)
    assert (log["state"], log["attempts"]) == ("delivered", 2)
    assert [(a["attempt"], a["trigger"], a["outcome"]) for a in log["items"]] == [
        (2, "replay", "delivered"),
        (1, "workflow", "delivered"),
    ]
    assert table.returncode == 0, table.stderr
    assert f"msg_{job_id}" in table.stdout
    assert table.stdout.count("HTTP 200") == 2


def test_webhooks_redeliver_a_time_range_follows_the_cursor_to_the_end(home: Path, tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        older = generated(home, tmp_path, "a range kite, first", hook.url)
        newer = str(generated(home, tmp_path, "a range kite, second", hook.url)["id"])
        silent = str(generated(home, tmp_path, "a range kite without a webhook")["id"])
        for job_id in (str(older["id"]), newer):
            hook.wait_for_job(job_id)
        after = ["--created-after", str(older["created_at"])]

        paged = run("webhooks", "redeliver", *after, "--batch", "1", "--json", cwd=home)
        summed = run("webhooks", "redeliver", *after, "--status", "completed", cwd=home)

    assert paged.returncode == 0, paged.stderr
    report = json.loads(paged.stdout)
    assert [item["id"] for item in report["items"]] == [silent, newer, older["id"]]
    assert [item["outcome"] for item in report["items"]] == ["skipped", "redelivered", "redelivered"]
    assert (report["matched"], report["redelivered"], report["failed"], report["skipped"]) == (3, 2, 0, 1)
    assert "going on" in paged.stderr  # one call per job: it followed the cursor
    assert summed.returncode == 0, summed.stderr
    assert summed.stdout.strip().endswith("3 matched: 2 redelivered, 0 failed, 1 skipped")
    for job_id in (older["id"], newer):
        assert len([d for d in hook.deliveries if d.json().get("id") == job_id]) == 3


def test_webhooks_errors_are_one_line_and_a_refused_replay_exits_non_zero(home: Path, tmp_path: Path) -> None:
    job_id = str(
        generated(home, tmp_path, "a kite to a closed port", f"http://127.0.0.1:{free_port()}/hook")["id"]
    )

    refused = run("webhooks", "redeliver", job_id, cwd=home)

    assert refused.returncode == 1
    assert refused.stdout.startswith(f"{job_id}: failed (")
    assert one_line_error(run("webhooks", "redeliver", "--created-after", "monday", cwd=home)).startswith(
        "error: 400: created_after must be an ISO 8601 date"
    )
    assert "404" in one_line_error(run("webhooks", "log", "0" * 32, cwd=home))
    assert "not both" in one_line_error(run("webhooks", "redeliver", job_id, "--status", "failed", cwd=home))
    assert "give a job id, or a time range" in one_line_error(run("webhooks", "redeliver", cwd=home))


# --------------------------------------------------------------------------- errors and help
def test_errors_are_one_line_and_exit_non_zero(stack: LocalStack, home: Path, tmp_path: Path) -> None:
    dead = tmp_path / "dead"
    (dead / ".local").mkdir(parents=True)
    info = json.loads(stack.state_file.read_text())
    port = free_port()
    info.update(api_url=f"http://127.0.0.1:{port}", aws_endpoint_url=f"http://127.0.0.1:{port}")
    (dead / ".local" / "stack.json").write_text(json.dumps(info))

    assert "no fluxrelay stack found" in one_line_error(run("jobs", "show", "0" * 32, cwd=tmp_path))
    assert "local stack is not running" in one_line_error(run("jobs", "show", "0" * 32, cwd=dead))
    assert "local stack is not running" in one_line_error(run("keys", "list", cwd=dead))
    refused = run("jobs", "show", "0" * 32, cwd=home, env={"FLUXRELAY_API_KEY": "fr_not-a-key"})
    assert "API key was refused" in one_line_error(refused)
    bad_size = run("generate", "x", "--size", "99*99", cwd=home)
    assert one_line_error(bad_size).startswith("error: 400: size must")
    assert "404" in one_line_error(run("jobs", "show", "0" * 32, cwd=home))
    no_key = run("jobs", "show", "0" * 32, cwd=home, env={"FLUXRELAY_API_URL": stack.api_url})
    assert "FLUXRELAY_API_KEY" in one_line_error(no_key)


def test_the_old_receiver_module_points_to_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fluxrelay_local.receiver"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith("run `fluxrelay receiver --port 8000` instead")


@pytest.mark.parametrize(
    "command",
    [[], ["generate"], ["jobs"], ["jobs", "list"], ["jobs", "show"], ["jobs", "watch"], ["jobs", "cancel"],
     ["keys"], ["keys", "create"],
     ["keys", "revoke"], ["keys", "list"], ["receiver"], ["webhooks"],
     ["webhooks", "log"], ["webhooks", "redeliver"]],
)  # fmt: skip
def test_every_command_has_help(command: list[str]) -> None:
    from fluxrelay_cli.app import _register, app

    _register()
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: fluxrelay" in result.output
