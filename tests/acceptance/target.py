"""The stack under acceptance: where its API is, what it is called, and how to get API keys for it.

The suite sees a stack only through what an operator has: its outputs (API URL, bucket, topic,
table) and API keys. There are three ways to point it at one, chosen from the environment:

- `ACCEPTANCE_STACK=<name>` (and `ACCEPTANCE_REGION`, else your AWS config): a deployed stack.
  Its CloudFormation outputs are read with your AWS credentials, and temporary API keys are
  written to its table (then revoked). `ACCEPTANCE_API_URL` replaces the `ApiUrl` output, e.g.
  with your custom domain.
- `ACCEPTANCE_STACK_JSON=<path>`: the local stack already running (`make run` writes
  `.local/stack.json`), if its API answers; otherwise one is started for the run.
- neither: a local stack is started for the run (`python -m fluxrelay_local` in its own process,
  free ports) and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore

# The outputs of template.yaml the suite reads; `TableName` only to issue the temporary keys.
REQUIRED_OUTPUTS = ("ApiUrl", "TableName", "BucketName", "TopicArn")
START_TIMEOUT = 240.0  # deploying the template into moto on a busy 2-core machine


class TargetError(RuntimeError):
    """The stack to test cannot be reached or described; the message says what to do."""


@dataclass
class KeyIssuer:
    """Creates API keys for throw-away owners and revokes every one of them at `revoke_all()`."""

    store: DynamoApiKeyStore
    issued: list[str] = field(default_factory=list, repr=False)  # keys never go into test reports

    def create(self, owner: str) -> str:
        key, _ = self.store.create(owner)
        self.issued.append(key)
        return key

    def revoke(self, key: str) -> None:
        self.store.revoke(key)
        self.issued.remove(key)

    def revoke_all(self) -> None:
        """Revoke every issued key; one that fails does not keep the others active."""
        failed = []
        for key in list(self.issued):
            try:
                self.revoke(key)
            except Exception as exc:  # every key gets its attempt; the failures are reported together
                failed.append(f"{key[:6]}...: {exc}")
        if failed:
            raise TargetError(f"could not revoke {len(failed)} temporary API keys: {'; '.join(failed)}")


@dataclass
class Target:
    """One stack to test, and AWS clients for its account (`client`): the operator's credentials
    for a deployed stack, the emulator for a local one. `deployed` is False for a local stack
    (the WaveSpeed stand-in, or whatever upstream `make run` was given); `url_policy` is
    "strict" unless the local stack accepts http:// webhooks on loopback."""

    description: str
    api_url: str
    bucket: str
    topic_arn: str
    table: str
    deployed: bool
    session: boto3.session.Session = field(repr=False)
    endpoint_url: str | None = None
    url_policy: str = "strict"
    keys: KeyIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyIssuer(DynamoApiKeyStore(self.table, client=self.client("dynamodb")))

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)

    def new_owner(self, role: str) -> str:
        """A fresh owner id, so a run never sees another run's jobs."""
        return f"acceptance-{role}-{secrets.token_hex(4)}"


# --------------------------------------------------------------------------- deployed stacks
def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack, checked to be complete."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise TargetError(f"cannot describe stack {stack_name!r}: {exc}") from exc
    except BotoCoreError as exc:  # no credentials, no region, no network
        raise TargetError(f"cannot reach CloudFormation for stack {stack_name!r}: {exc}") from exc
    status = stacks[0]["StackStatus"]
    # A stack serves after its creation completed and through later updates (even rolled back ones).
    if status != "CREATE_COMPLETE" and not status.startswith(("UPDATE_", "IMPORT_")):
        raise TargetError(f"stack {stack_name!r} is {status}: deploy it first (make deploy)")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise TargetError(
            f"stack {stack_name!r} has no output {', '.join(missing)}: is it a fluxrelay stack?"
        )
    return outputs


def deployed_target(
    stack_name: str, region: str | None = None, *, api_url: str | None = None, session: Any = None
) -> Target:
    """A deployed stack by name; `api_url` replaces its `ApiUrl` output (a custom domain)."""
    session = session or boto3.session.Session(region_name=region or None)
    if not session.region_name:
        raise TargetError("no AWS region: pass REGION=<region> or configure a default region")
    outputs = stack_outputs(session.client("cloudformation"), stack_name)
    return Target(
        description=f"deployed stack {stack_name} in {session.region_name}",
        api_url=(api_url or outputs["ApiUrl"]).rstrip("/"),
        bucket=outputs["BucketName"],
        topic_arn=outputs["TopicArn"],
        table=outputs["TableName"],
        deployed=True,
        session=session,
    )


# --------------------------------------------------------------------------- local stacks
def local_target(state: dict[str, Any], description: str) -> Target:
    """A local stack from its state (`.local/stack.json`); AWS calls go to its emulator."""
    # moto accepts any credentials; never send real ones to it.
    fake = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=state["region"],
    )
    return Target(
        description=f"{description} at {state['api_url']} (upstream: {state.get('upstream', '?')})",
        api_url=state["api_url"],
        bucket=state["bucket"],
        topic_arn=state["topic_arn"],
        table=state["table"],
        deployed=False,
        session=fake,
        endpoint_url=state["aws_endpoint_url"],
        url_policy=state.get("url_policy", "strict"),
    )


def running_state(path: Path) -> dict[str, Any] | None:
    """The state of the local stack described by `path`, if it is running (its API answers)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        healthy = httpx.get(f"{state['api_url']}/health", timeout=3).status_code == 200
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    return dict(state) if healthy else None


# `python -m fluxrelay_local`, which on Linux first asks for SIGTERM when its parent dies
# (PR_SET_PDEATHSIG): a test run that is killed, or stopped by a timeout's SIGTERM that pytest
# does not handle, leaves no orphaned stack holding its ports.
_RUN_LOCAL_STACK = """
import ctypes, runpy, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
runpy.run_module("fluxrelay_local", run_name="__main__", alter_sys=True)
"""


@contextlib.contextmanager
def started_local_stack(work_dir: Path) -> Iterator[dict[str, Any]]:
    """`python -m fluxrelay_local` (what `make run` runs) in its own process on free ports; yields
    its state once its API answers, and stops it (SIGTERM, as Ctrl-C would) afterwards."""
    env = {**os.environ, "API_PORT": "0", "UPSTREAM_PORT": "0", "AWS_PORT": "0"}
    log_path = work_dir / "local-stack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our fixed script
            [sys.executable, "-c", _RUN_LOCAL_STACK],
            cwd=work_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield _wait_until_running(process, work_dir / ".local" / "stack.json", log_path)
    finally:
        _stop(process)


def _wait_until_running(process: subprocess.Popen[bytes], state_file: Path, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetError(f"the local stack exited with {process.returncode}:\n{_tail(log_path)}")
        state = running_state(state_file) if state_file.exists() else None
        if state:
            return state
        time.sleep(0.2)
    raise TargetError(f"the local stack did not start within {START_TIMEOUT:.0f}s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- choosing
@contextlib.contextmanager
def target_from_env(work_dir: Path, env: dict[str, str] | None = None) -> Iterator[Target]:
    """The target the environment names (see the module docstring); revokes its temporary keys
    and stops a stack it started when the block ends."""
    env = dict(os.environ if env is None else env)
    with contextlib.ExitStack() as cleanup:
        if env.get("ACCEPTANCE_STACK"):
            target = deployed_target(
                env["ACCEPTANCE_STACK"], env.get("ACCEPTANCE_REGION"), api_url=env.get("ACCEPTANCE_API_URL")
            )
        else:
            running = env.get("ACCEPTANCE_STACK_JSON")
            state = running_state(Path(running)) if running else None
            if state is not None:
                target = local_target(state, f"the running local stack ({running})")
            else:
                state = cleanup.enter_context(started_local_stack(work_dir))
                target = local_target(state, "a local stack started for this run")
        cleanup.callback(target.keys.revoke_all)
        yield target
