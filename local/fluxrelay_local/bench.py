"""Latency and cost benchmark of the generation pipeline on the local stack (`make bench`).

    python -m fluxrelay_local.bench [--jobs 20] [--concurrency 4] [--stack-json .local/stack.json]

Without `--stack-json` it starts its own LocalStack in this process with real-time waits (no
time scaling), free ports and a stand-in with realistic timing, so it can also count what only
an in-process stack shows: Lambda invocations and DynamoDB writes. With `--stack-json` it drives
a running `make run` stack over HTTP (those two counts are then not available).

Each job is a one-image txt2img submit with a webhook to a receiver in this process. Measured per
job: submit latency (the HTTP round trip), upstream completion → webhook received (completion
taken from the stand-in's task record), submit → webhook received; state transitions (the
execution's *StateEntered events), Lambda invocations and their billed durations, DynamoDB writes
and upstream calls. Alternating with each fluxrelay job, the same worker runs the official
WaveSpeed Python SDK's `Client.run()` against the same stand-in (the client fluxrelay replaces:
1 s polls, no copy), and the report compares the two medians.

Targets: completion → webhook p50 <= 0.3 s and p95 <= 0.6 s (WaveSpeed's push wakes the
workflow); submit → webhook median <= 0.85x the SDK's `Client.run()`; <= 8 state transitions for a
one-image job. The estimated orchestration cost per job uses the list prices below.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from fluxrelay_local.receiver import WebhookReceiver

SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora"
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
TARGET_COMPLETION_TO_WEBHOOK_P50 = 0.3
TARGET_COMPLETION_TO_WEBHOOK_P95 = 0.6
TARGET_SDK_RATIO = 0.85
TARGET_STATE_TRANSITIONS = 8
# List prices, us-east-1 (https://aws.amazon.com/step-functions/pricing/,
# https://aws.amazon.com/lambda/pricing/): Standard workflows per state transition; Lambda on arm64
# per GB-second and per request.
PRICE_PER_TRANSITION = 0.025 / 1000
PRICE_PER_GB_SECOND_ARM64 = 0.0000133334
PRICE_PER_LAMBDA_REQUEST = 0.20 / 1_000_000


# --------------------------------------------------------------------------- measuring
@dataclass
class JobRun:
    marker: str
    submit_started: float = 0.0  # wall clock
    submit_latency: float = math.nan
    job_id: str = ""
    upstream_id: str = ""
    upstream_completed: float = math.nan  # wall clock
    webhook_received: float = math.nan  # wall clock
    transitions: int = 0
    upstream_calls: int = 0
    sdk_seconds: float = math.nan  # the SDK's Client.run() of the job run after this one
    error: str = ""

    @property
    def completion_to_webhook(self) -> float:
        return self.webhook_received - self.upstream_completed

    @property
    def submit_to_webhook(self) -> float:
        return self.webhook_received - self.submit_started


class LambdaMeter:
    """Billed GB-seconds of the in-process Lambda invocations (duration rounded up to 1 ms, times
    the function's configured memory), by wrapping the runner's `invoke`."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self._lock = threading.Lock()
        self.gb_seconds = 0.0
        self.requests = 0
        original = runner.invoke

        def timed(name_or_logical_id: str, event: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(name_or_logical_id, event)
            finally:
                billed_ms = math.ceil((time.perf_counter() - started) * 1000)
                memory = runner.function(name_or_logical_id).memory_mb
                with self._lock:
                    self.gb_seconds += billed_ms / 1000 * memory / 1024
                    self.requests += 1

        runner.invoke = timed

    def snapshot(self) -> tuple[float, int]:
        with self._lock:
            return self.gb_seconds, self.requests


class DynamoWriteCounter:
    """Counts DynamoDB write calls made by boto3 clients of this process's default session
    (the handlers' clients), by the kind of item (the `pk` prefix before '#')."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def install(self) -> None:
        import boto3

        events = boto3._get_default_session().events
        for operation in DYNAMODB_WRITES:
            events.register(f"before-parameter-build.dynamodb.{operation}", self._count)

    def _count(self, params: dict[str, Any] | None = None, model: Any = None, **_: Any) -> None:
        # `params` are the call's own arguments (before serialisation), once per call, not per retry.
        call = params if isinstance(params, dict) else {}
        key = call.get("Key") or call.get("Item") or {}
        pk = key.get("pk") if isinstance(key, dict) else None
        pk = str(pk.get("S", "")) if isinstance(pk, dict) else str(pk or "")
        kind = pk.split("#", 1)[0] if "#" in pk else (getattr(model, "name", "") or "other")
        with self._lock:
            self.calls[kind] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the finite values; NaN when there are none."""
    finite = sorted(v for v in values if not math.isnan(v))
    if not finite:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(finite)))
    return finite[rank - 1]


def _wall(rfc3339: str) -> float:
    seconds, _, fraction = rfc3339.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(seconds + "+00:00").timestamp()
    return moment + (float(f"0.{fraction}") if fraction else 0.0)


# --------------------------------------------------------------------------- the stack
@dataclass
class Target:
    """What the benchmark drives: a stack's URLs and clients, plus in-process extras."""

    api_url: str
    api_key: str
    upstream_url: str
    aws_endpoint_url: str
    region: str
    table: str
    state_machine_arn: str
    standin: Any = None  # the in-process StandIn (exact task timing), else None
    runner: Any = None  # the in-process LambdaRunner (invocation counts), else None
    standin_queue_seconds: float = 0.2
    upstream_key: str = ""  # the stand-in's key (a stack in another process)
    notes: list[str] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return aws_client(service, self.region, self.aws_endpoint_url)


def aws_client(service: str, region: str, endpoint_url: str) -> Any:
    """A boto3 client for the emulated AWS (its fake credentials, whatever the environment says)."""
    import boto3

    from fluxrelay_local.stack import FAKE_CREDENTIALS

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@contextmanager
def own_stack(args: argparse.Namespace, writes: DynamoWriteCounter) -> Iterator[Target]:
    from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
    from fluxrelay.composition import reset
    from fluxrelay_local.stack import LocalStack, StackConfig

    parameters = {
        "ExpectedSecondsPerImage": f"{args.expected_seconds_per_image:g}",
        "PollIntervalSeconds": str(args.poll_interval_seconds),
        "PollMaxIntervalSeconds": str(args.poll_max_interval_seconds),
        "LogLevel": "WARNING",  # keep the handlers' INFO lines out of the report
    }
    with tempfile.TemporaryDirectory(prefix="fluxrelay-bench-") as state_dir:
        config = StackConfig(
            api_port=0,
            upstream_port=0,
            aws_port=0,
            time_scale=1.0,
            state_dir=Path(state_dir),
            write_state_file=False,
            schedule_seconds=0,  # no sweeper runs among the measured jobs
            parameter_overrides=parameters,
            standin_options={
                "seconds_per_image": args.seconds_per_image,
                "queue_seconds": args.queue_seconds,
            },
        )
        stack = LocalStack(config).start()
        try:
            writes.install()
            reset()  # the handlers build new clients, which carry the counting hook
            # Enough for the run: the default per-key limit (60/min) would throttle the bench.
            key, _ = DynamoApiKeyStore(stack.table).create(
                "bench", requests_per_minute=max(600, args.jobs * 2), images_per_day=max(10_000, args.jobs)
            )
            yield Target(
                api_url=stack.api_url,
                api_key=key,
                upstream_url=stack.upstream_url,
                aws_endpoint_url=stack.aws_endpoint_url,
                region=stack.config.region,
                table=stack.table,
                state_machine_arn=stack.state_machine_arn,
                standin=stack.standin,
                runner=stack.runner,
                standin_queue_seconds=args.queue_seconds,
                upstream_key=stack.standin.api_key if stack.standin else "",
                notes=[
                    "own stack: real-time waits; parameters "
                    + ", ".join(f"{k}={v}" for k, v in parameters.items())
                    + f"; stand-in {args.seconds_per_image:g} s/image, {args.queue_seconds:g} s queue"
                ],
            )
        finally:
            stack.stop()


def running_stack(args: argparse.Namespace) -> Target:
    info = json.loads(Path(args.stack_json).read_text(encoding="utf-8"))
    if info.get("upstream") not in (None, "standin"):
        raise SystemExit(
            "the stack uses the real WaveSpeed API; the benchmark runs only against the stand-in"
        )
    return Target(
        api_url=info["api_url"],
        api_key=info["api_key"],
        upstream_url=info["upstream_url"],
        aws_endpoint_url=info["aws_endpoint_url"],
        region=info["region"],
        table=info["table"],
        state_machine_arn=info["state_machine_arn"],
        standin_queue_seconds=args.queue_seconds,
        upstream_key=_upstream_key(info),
        notes=[
            f"running stack from {args.stack_json}: its own parameters; Lambda invocations and "
            "DynamoDB writes are only counted with an in-process stack; upstream completion = task "
            f"created_at + {args.queue_seconds:g} s queue + executionTime"
        ],
    )


def _upstream_key(info: dict[str, Any]) -> str:
    if not info.get("wavespeed_secret_name"):
        return ""
    secrets = aws_client("secretsmanager", info["region"], info["aws_endpoint_url"])
    return str(secrets.get_secret_value(SecretId=info["wavespeed_secret_name"])["SecretString"])


# --------------------------------------------------------------------------- the run
def run_sdk(target: Target, body: dict[str, Any], run: JobRun) -> None:
    """The official SDK's `Client.run()` straight against the same stand-in: submit, then poll
    every second until the task ends (no copy to S3, no webhook)."""
    from wavespeed import Client

    client = Client(api_key=target.upstream_key, base_url=target.upstream_url, max_retries=0)
    started = time.perf_counter()
    client.run("wavespeed-ai/flux-schnell-lora", body)
    run.sdk_seconds = time.perf_counter() - started


def run_pair(
    target: Target,
    http: httpx.Client,
    receiver: WebhookReceiver,
    run: JobRun,
    timeout: float,
) -> None:
    """One fluxrelay job, then one SDK run of the same request: the two alternate per worker."""
    run_job(target, http, receiver, _body(run.marker), run, timeout)
    if target.upstream_key:
        run_sdk(target, _body(run.marker + "-sdk"), run)


def run_job(
    target: Target,
    http: httpx.Client,
    receiver: WebhookReceiver,
    body: dict[str, Any],
    run: JobRun,
    timeout: float,
) -> None:
    run.submit_started = time.time()
    started = time.perf_counter()
    response = http.post(
        f"{target.api_url}{SUBMIT_PATH}",
        params={"webhook": receiver.url},
        json=body,
        headers={"Authorization": f"Bearer {target.api_key}"},
    )
    run.submit_latency = time.perf_counter() - started
    if response.status_code != 200:
        run.error = f"submit answered HTTP {response.status_code}: {response.text[:200]}"
        return
    run.job_id = response.json()["data"]["id"]
    # A closed loop: this worker's next job goes only after this one's webhook, so at most
    # `--concurrency` jobs are in flight (below MaxConcurrentUpstreamTasks, nothing queues).
    try:
        receiver.wait_for_job(run.job_id, timeout)
    except TimeoutError:
        run.error = "no webhook within the timeout"


def _execution_done(sfn: Any, arn: str) -> bool:
    return bool(sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")


def wait_until(probe: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def collect(target: Target, receiver: WebhookReceiver, runs: list[JobRun], timeout: float) -> None:
    """After the webhooks: upstream ids, completion times, transitions and upstream calls."""
    ddb, sfn = target.client("dynamodb"), target.client("stepfunctions")
    execution_prefix = target.state_machine_arn.replace(":stateMachine:", ":execution:")
    for run in runs:
        if not run.job_id:
            continue
        delivery = receiver.arrival(run.job_id)
        run.webhook_received = delivery.received_at if delivery else math.nan
        item = ddb.get_item(TableName=target.table, Key={"pk": {"S": f"JOB#{run.job_id}"}}).get("Item", {})
        run.upstream_id = item.get("upstream_id", {}).get("S", "")
        arn = f"{execution_prefix}:{run.job_id}"
        if not wait_until(functools.partial(_execution_done, sfn, arn), timeout):
            run.error = run.error or "execution still running"
        history = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        run.transitions = sum(
            1 for page in history for e in page["events"] if e["type"].endswith("StateEntered")
        )

    received = target.standin.received if target.standin is not None else _standin_requests(target)
    tasks = {t.id: t for t in target.standin.tasks()} if target.standin is not None else {}
    offset = time.time() - time.monotonic()  # the stand-in's clock is time.monotonic
    for run in runs:
        if not run.upstream_id:
            continue
        run.upstream_calls = sum(
            1
            for r in received
            if run.upstream_id in r["path"]
            or (r["method"] == "POST" and run.marker in str((r.get("json") or {}).get("prompt", "")))
        )
        task = tasks.get(run.upstream_id)
        if task is not None and task.ends_at is not None:
            run.upstream_completed = task.ends_at + offset
        else:
            run.upstream_completed = _completion_from_result(target, run.upstream_id)


def _standin_requests(target: Target) -> list[dict[str, Any]]:
    return list(httpx.get(f"{target.upstream_url}/_standin/requests", timeout=30).json()["data"])


def _completion_from_result(target: Target, upstream_id: str) -> float:
    """A stack in another process: created_at + queue + executionTime of the stand-in's task (read
    after the upstream calls were counted, so this GET is not among them)."""
    if not target.upstream_key:
        return math.nan
    response = httpx.get(
        f"{target.upstream_url}/api/v3/predictions/{upstream_id}/result",
        headers={"Authorization": f"Bearer {target.upstream_key}"},
        timeout=30,
    )
    data = response.json().get("data") or {}
    if data.get("status") != "completed":
        return math.nan
    return _wall(data["created_at"]) + target.standin_queue_seconds + data["executionTime"] / 1000


def benchmark(args: argparse.Namespace) -> int:
    writes = DynamoWriteCounter()
    with own_stack(args, writes) if not args.stack_json else _nullcontext(running_stack(args)) as target:
        return _run(args, target, writes if not args.stack_json else None)


@contextmanager
def _nullcontext(value: Target) -> Iterator[Target]:
    yield value


def _run(args: argparse.Namespace, target: Target, writes: DynamoWriteCounter | None) -> int:
    runs = [JobRun(marker=f"bench-{uuid.uuid4().hex[:12]}") for _ in range(args.jobs)]
    with WebhookReceiver() as receiver, httpx.Client(timeout=60) as http:
        # One warm-up job (not measured): cold imports and first clients are not the steady state.
        warm = JobRun(marker=f"bench-warmup-{uuid.uuid4().hex[:8]}")
        run_job(target, http, receiver, _body(warm.marker), warm, args.timeout)
        if warm.error:
            print(f"warm-up job failed: {warm.error}", file=sys.stderr)
            return 1
        if warm.job_id:
            sfn = target.client("stepfunctions")
            arn = target.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{warm.job_id}"
            wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", args.timeout)

        invocations_before = Counter(target.runner.invocations) if target.runner is not None else None
        meter = LambdaMeter(target.runner) if target.runner is not None else None
        writes_before = writes.snapshot() if writes is not None else None
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            futures = [pool.submit(run_pair, target, http, receiver, run, args.timeout) for run in runs]
        for run, future in zip(runs, futures, strict=True):
            if future.exception() is not None:
                run.error = f"{type(future.exception()).__name__}: {future.exception()}"
        collect(target, receiver, runs, args.timeout)
        invocations = (
            Counter(target.runner.invocations) - invocations_before
            if invocations_before is not None
            else None
        )
        dynamo = (
            writes.snapshot() - writes_before if writes is not None and writes_before is not None else None
        )

        gb_seconds = meter.snapshot()[0] if meter is not None else None

    return report(args, target, runs, invocations, dynamo, gb_seconds)


def _body(marker: str) -> dict[str, Any]:
    return {"prompt": f"a lighthouse at dusk, watercolor ({marker})", "size": "1024*1024", "num_images": 1}


# --------------------------------------------------------------------------- the report
def report(
    args: argparse.Namespace,
    target: Target,
    runs: list[JobRun],
    invocations: Counter[str] | None,
    dynamo: Counter[str] | None,
    gb_seconds: float | None = None,
) -> int:
    ok = [r for r in runs if r.job_id and not math.isnan(r.webhook_received)]
    n = len(ok)
    print(f"fluxrelay bench: {len(runs)} one-image jobs, concurrency {args.concurrency}")
    for note in target.notes:
        print(f"  {note}")
    failed = [r for r in runs if r not in ok]
    for run in failed[:5]:
        print(f"  job {run.job_id or '(none)'}: {run.error or 'no webhook within the timeout'}")
    print()
    rows: list[tuple[str, list[float], str]] = [
        ("submit latency (HTTP round trip)", [r.submit_latency for r in ok], "s"),
        ("upstream completion -> webhook received", [r.completion_to_webhook for r in ok], "s"),
        ("submit -> webhook received", [r.submit_to_webhook for r in ok], "s"),
        ("official SDK Client.run() (same stand-in)", [r.sdk_seconds for r in ok], "s"),
        ("state transitions per job", [float(r.transitions) for r in ok], ""),
        ("upstream calls per job", [float(r.upstream_calls) for r in ok], ""),
    ]
    print(f"  {'measure':<42} {'median':>9} {'p95':>9} {'min':>9} {'max':>9}")
    for name, values, unit in rows:
        cells = [statistics.median(values) if values else math.nan, percentile(values, 95)]
        cells += [min(values, default=math.nan), max(values, default=math.nan)]
        print(f"  {name:<42} " + " ".join(_cell(v, unit) for v in cells))
    if invocations is not None and len(runs):
        per_job = sum(invocations.values()) / len(runs)
        detail = ", ".join(
            f"{k.removesuffix('Function')} {v / len(runs):.2f}" for k, v in sorted(invocations.items())
        )
        print(f"  {'Lambda invocations per job (mean)':<42} {per_job:>9.2f}   ({detail})")
    else:
        print(f"  {'Lambda invocations per job':<42} {'n/a':>9}   (needs the in-process stack)")
    if dynamo is not None and len(runs):
        per_job = sum(dynamo.values()) / len(runs)
        detail = ", ".join(f"{k} {v / len(runs):.2f}" for k, v in sorted(dynamo.items()))
        print(f"  {'DynamoDB writes per job (mean)':<42} {per_job:>9.2f}   ({detail})")
    else:
        print(f"  {'DynamoDB writes per job':<42} {'n/a':>9}   (needs the in-process stack)")
    transitions = statistics.mean([r.transitions for r in ok]) if ok else math.nan
    lambda_requests = sum(invocations.values()) / len(runs) if invocations is not None and runs else math.nan
    gbs = gb_seconds / len(runs) if gb_seconds is not None and runs else math.nan
    cost_sfn = transitions * PRICE_PER_TRANSITION
    cost_lambda = gbs * PRICE_PER_GB_SECOND_ARM64 + lambda_requests * PRICE_PER_LAMBDA_REQUEST
    print(
        f"  {'orchestration cost per job (estimate)':<42} ${cost_sfn + cost_lambda:.8f}   "
        f"(Step Functions {transitions:.1f} transitions x ${PRICE_PER_TRANSITION:.6f} = ${cost_sfn:.8f}; "
        f"Lambda arm64 {gbs:.4f} GB-s x ${PRICE_PER_GB_SECOND_ARM64} + {lambda_requests:.2f} requests x "
        f"${PRICE_PER_LAMBDA_REQUEST:.7f} = ${cost_lambda:.8f}; us-east-1 list prices)"
    )
    print()

    completion = [r.completion_to_webhook for r in ok]
    p50 = statistics.median(completion) if ok else math.nan
    p95 = percentile(completion, 95)
    ours = statistics.median([r.submit_to_webhook for r in ok]) if ok else math.nan
    sdk_values = [r.sdk_seconds for r in ok if not math.isnan(r.sdk_seconds)]
    sdk = statistics.median(sdk_values) if sdk_values else math.nan
    ratio = ours / sdk if sdk_values else math.nan
    print(f"  submit -> webhook median / SDK Client.run() median = {ours:.3f} s / {sdk:.3f} s = {ratio:.2f}x")
    most_transitions = max((r.transitions for r in ok), default=0)
    checks = [
        (
            f"completion -> webhook p50 {p50:.3f} s <= {TARGET_COMPLETION_TO_WEBHOOK_P50:g} s",
            not math.isnan(p50) and p50 <= TARGET_COMPLETION_TO_WEBHOOK_P50,
        ),
        (
            f"completion -> webhook p95 {p95:.3f} s <= {TARGET_COMPLETION_TO_WEBHOOK_P95:g} s",
            not math.isnan(p95) and p95 <= TARGET_COMPLETION_TO_WEBHOOK_P95,
        ),
        (
            f"submit -> webhook {ratio:.2f}x the official SDK's Client.run() <= {TARGET_SDK_RATIO:g}x",
            not math.isnan(ratio) and ratio <= TARGET_SDK_RATIO,
        ),
        (
            f"state transitions max {most_transitions} <= {TARGET_STATE_TRANSITIONS}",
            0 < most_transitions <= TARGET_STATE_TRANSITIONS,
        ),
        (f"all {len(runs)} jobs notified", n == len(runs)),
    ]
    for text, passed in checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {text}")
    all_passed = all(passed for _, passed in checks)
    print(f"{'PASS' if all_passed else 'FAIL'}: targets {'met' if all_passed else 'missed'}")
    return 0 if all_passed else 1


def _cell(value: float, unit: str) -> str:
    if math.isnan(value):
        return f"{'n/a':>9}"
    return f"{value:>8.3f}{unit}" if unit else f"{value:>9.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="measured jobs (default 20)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent submits (default 4)")
    parser.add_argument("--stack-json", default=None, help="drive a running stack (e.g. .local/stack.json)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the webhooks")
    own = parser.add_argument_group("own stack (ignored with --stack-json)")
    # `make run`'s stand-in timing (1 s per image, 0.2 s queueing).
    own.add_argument("--seconds-per-image", type=float, default=1.0, help="stand-in inference time")
    own.add_argument("--queue-seconds", type=float, default=0.2, help="stand-in queue time")
    own.add_argument(
        "--expected-seconds-per-image",
        type=float,
        default=3.0,
        help="template parameter ExpectedSecondsPerImage: first poll after this long (default 3)",
    )
    own.add_argument(
        "--poll-interval-seconds", type=int, default=1, help="template parameter PollIntervalSeconds"
    )
    own.add_argument(
        "--poll-max-interval-seconds", type=int, default=10, help="template parameter PollMaxIntervalSeconds"
    )
    args = parser.parse_args(argv)
    # Handlers log through Powertools at the level set when fluxrelay is first imported: now.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's and the servers' access logs
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if args.jobs < 1 or args.concurrency < 1:
        parser.error("--jobs and --concurrency must be at least 1")
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
