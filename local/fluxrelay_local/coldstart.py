"""Cold-start benchmark: each function's cold import against what it cannot avoid.

Measured as the CPU time of whole processes. For every `functions/<name>/app.py`, a fresh Python
process imports the handler module and builds what its first invocation builds: the services it
asks the composition root for, the AWS clients it talks to, and the HTTP client of its first
webhook or output fetch (nothing is sent anywhere). The
baseline is a fresh process that imports boto3, creates the same AWS clients (and an httpx
client where the function talks HTTP: the upstream, webhooks, output URLs) and builds the
Powertools Logger. Each side runs several times, interleaved; the ratio of a function is the median
of its runs' ratios (each handler process against the baseline process beside it), so a busy
moment of a shared machine slows both sides of a pair alike. For each function that reads or
writes a job, the same runs also measure its floor: the baseline plus importing the job item
(pydantic and the `JobItem` model with the models it nests), the least such a function can cost
in this house style (the DynamoDB item is a pydantic model) whatever its own code does.

`make bench-coldstart` runs both sides with the interpreter of `.venv-coldstart`, a virtualenv
holding exactly the layer's requirements (what a deployed function has on its path), and the
package from `layers/fluxrelay`: the development virtualenv's extra packages change what some
libraries load (httpx imports its command-line tool's dependencies when they are installed).
The processes see a Lambda-like environment (AWS_LAMBDA_FUNCTION_NAME set), so Powertools behaves
as it does in a deployed function. RUNS=n sets the runs per side, TARGET the ratio to meet.

`--instructions` (`make bench-coldstart INSTRUCTIONS=1`) counts each process's user-space
instructions with valgrind's callgrind instead: one run a side, the same figures on every run
whatever else the machine does (CPU time moves by about a tenth from run to run on a shared
machine), so two trees can be compared exactly. It leaves out what the kernel does for a process
(reading files, mapping memory), which CPU time includes: for the smallest functions an
instruction ratio is somewhat above the CPU-time ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO_ROOT / "functions"


@dataclass(frozen=True)
class Function:
    name: str
    services: tuple[str, ...]  # what its first invocation asks the container for
    aws: tuple[str, ...]  # the boto3 clients it talks to (Secrets Manager: the WaveSpeed key too)
    http: bool  # whether it talks HTTP (the upstream, webhooks, output URLs)
    # Modules its first invocation imports on its own: Pillow where it looks at an image, the
    # secrets adapter where it reads the WaveSpeed key, the routes of the API's first request.
    # The handler side counts what a cold start pays, also where an import waits for the first
    # call.
    first_use: tuple[str, ...] = ()
    # What its first invocation runs besides: the client of the first webhook or output fetch.
    first_call: str = ""


PILLOW, SECRETS = "PIL.Image", "fluxrelay.adapters.secrets"
# The SSRF guard's client, as it opens one for each webhook and each output fetch; its TLS context
# (the CA bundle read) is built at the first one. The baseline's httpx client stands for it.
GUARDED_CLIENT = (
    "import httpx\nfrom fluxrelay.adapters.urlguard.transport import tls_context\n"
    "httpx.Client(trust_env=False, follow_redirects=False, verify=tls_context())\n"
)
# The API function imports a resource's routes at the first request for one of them: a submit.
SUBMIT_ROUTE = "fluxrelay.api.routes.predictions"
CATALOGUE = (
    Function(
        "api",
        ("submit", "presenter", "limiter", "idempotency"),
        ("dynamodb", "stepfunctions", "s3", "secretsmanager"),
        True,
        (SECRETS, SUBMIT_ROUTE),
    ),
    Function("authorizer", ("keys",), ("dynamodb",), False),
    Function("check_result", ("poll",), ("dynamodb", "stepfunctions", "secretsmanager"), True, (SECRETS,)),
    Function("expire_upload", ("upload_expiry",), ("dynamodb", "s3", "stepfunctions"), False),
    Function("mark_failed", ("fail",), ("dynamodb",), False),
    Function(
        "notify", ("notify",), ("dynamodb", "sns", "s3", "secretsmanager"), True, first_call=GUARDED_CLIENT
    ),
    Function("park_job", ("lifecycle",), ("dynamodb", "stepfunctions"), False),
    Function(
        "s3_trigger",
        ("uploads",),
        ("dynamodb", "s3", "stepfunctions", "secretsmanager"),
        True,
        (PILLOW, SECRETS),
    ),
    Function(
        "store_outputs", ("store_outputs",), ("dynamodb", "s3"), True, (PILLOW,), first_call=GUARDED_CLIENT
    ),
    Function("sweep_jobs", ("sweeper",), ("dynamodb", "stepfunctions", "secretsmanager"), True, (SECRETS,)),
)

# What a deployed function has in its environment, minus anything secret; no value is contacted.
# The template's fixed settings (Powertools', pydantic's) are added from it: `environment()`.
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "fluxrelay-coldstart",
    "TABLE_NAME": "fluxrelay-jobs",
    "BUCKET_NAME": "fluxrelay-media",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:fluxrelay-jobs",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:fluxrelay",
    "UPLOAD_EXPIRY_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:expiry",
    "WAVESPEED_SECRET_NAME": "fluxrelay/wavespeed",
}


def environment() -> dict[str, str]:
    """`ENVIRONMENT` and the variables the template's Globals set to fixed values, as every
    deployed function has them (e.g. `PYDANTIC_DISABLE_PLUGINS`, which changes what a cold start
    does); variables set from parameters or resources are left to `ENVIRONMENT`."""
    from fluxrelay_local.deploy import load_template

    variables = load_template(REPO_ROOT / "template.yaml")["Globals"]["Function"]["Environment"]["Variables"]
    fixed = {name: str(value) for name, value in variables.items() if isinstance(value, str | int)}
    return {**ENVIRONMENT, **fixed}


def handler_script(fn: Function) -> str:
    services = "".join(f"c.{name}\n" for name in fn.services)
    clients = "".join(f"c.aws({service!r})\n" for service in fn.aws)
    later = "".join(f"import {module}\n" for module in fn.first_use)
    return (
        f"import sys\nsys.path.insert(0, {str(FUNCTIONS / fn.name)!r})\nimport app\n"
        f"from fluxrelay import composition\nc = composition.container()\n{services}{clients}{later}"
        f"{fn.first_call}"
    )


def baseline_script(fn: Function) -> str:
    clients = "".join(f"boto3.client({service!r})\n" for service in fn.aws)
    http = "import httpx\nhttpx.Client()\n" if fn.http else ""
    return f"import boto3\n{clients}{http}from aws_lambda_powertools import Logger\nLogger()\n"


# The least a function that reads or writes a job can cost on top of its baseline: importing
# pydantic and building the job item's models.
JOB_ITEM = "fluxrelay.domain.jobs"


def floor_script(fn: Function) -> str:
    return baseline_script(fn) + f"import {JOB_ITEM}\n"


def _run(
    python: str, script: str, deployed: dict[str, str], wrapper: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    ours = ("AWS_", "POWERTOOLS_", "PYTHON", "PYDANTIC_")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    # The layer's source tree unless `deployed` names another (the bytecode benchmark's build).
    env = {**keep, "PYTHONPATH": str(REPO_ROOT / "layers" / "fluxrelay"), **deployed}
    # Our own scripts, run with the interpreter the caller chose.
    return subprocess.run(  # noqa: S603
        [*wrapper, python, "-c", script], check=True, env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )


def run_once(python: str, script: str, deployed: dict[str, str]) -> float:
    """CPU seconds (user + system) of one fresh process running `script` in the `deployed`
    environment: on a shared machine a process's own CPU time varies far less than its wall-clock
    time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    _run(python, script, deployed)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def collected_instructions(valgrind_stderr: str) -> int:
    """The instruction count of callgrind's summary line (`==pid== Collected : N`)."""
    found = _COLLECTED.search(valgrind_stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {valgrind_stderr[-500:]}")
    return int(found.group(1))


def count_instructions(python: str, script: str, deployed: dict[str, str]) -> float:
    """User-space instructions of one fresh process running `script` under callgrind, with hash
    randomisation off so that every run executes the same instructions."""
    done = _run(python, script, {**deployed, "PYTHONHASHSEED": "0"}, wrapper=CALLGRIND)
    return float(collected_instructions(done.stderr))


def loads(python: str, script: str, module: str, deployed: dict[str, str]) -> bool:
    """Whether running `script` (a function's cold start, its floor) imports `module`."""
    probe = f"{script}import sys\nprint({module!r} in sys.modules)\n"
    return _run(python, probe, deployed).stdout.strip().endswith("True")


@dataclass(frozen=True)
class Measured:
    handler: float  # median CPU seconds
    baseline: float
    ratio: float  # median of the runs' handler / baseline
    floor: float | None  # median of the runs' (baseline + the job item) / baseline


def measure(python: str, fn: Function, runs: int, deployed: dict[str, str]) -> Measured:
    """Medians of the handler's and the baseline's CPU times, and of their ratios run by run: each
    handler process is paired with the baseline process started right after it, so a load that
    changes over the minutes of a run slows both sides of a pair alike. For a function that loads
    the job item, its floor is measured the same way, in the same runs."""
    with_floor = loads(python, handler_script(fn), JOB_ITEM, deployed)
    handler, baseline, floor = [], [], []
    for _ in range(runs):
        handler.append(run_once(python, handler_script(fn), deployed))
        baseline.append(run_once(python, baseline_script(fn), deployed))
        if with_floor:
            floor.append(run_once(python, floor_script(fn), deployed))
    ratios = [h / b for h, b in zip(handler, baseline, strict=True)]
    floors = [f / b for f, b in zip(floor, baseline, strict=False)]
    return Measured(
        handler=statistics.median(handler),
        baseline=statistics.median(baseline),
        ratio=statistics.median(ratios),
        floor=statistics.median(floors) if floors else None,
    )


def count(python: str, fn: Function, deployed: dict[str, str]) -> Measured:
    """Instruction counts of one handler, baseline and floor process each, run side by side
    (counts do not depend on what else runs)."""
    scripts = [handler_script(fn), baseline_script(fn)]
    if loads(python, handler_script(fn), JOB_ITEM, deployed):
        scripts.append(floor_script(fn))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = list(pool.map(lambda script: count_instructions(python, script, deployed), scripts))
    handler, baseline = counts[0], counts[1]
    return Measured(
        handler=handler,
        baseline=baseline,
        ratio=handler / baseline,
        floor=counts[2] / baseline if len(counts) > 2 else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "7")))
    parser.add_argument("--target", type=float, default=float(os.environ.get("TARGET", "1.3")))
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure with")
    parser.add_argument(
        "--instructions",
        action="store_true",
        default=os.environ.get("INSTRUCTIONS", "") not in ("", "0"),
        help="count user-space instructions with valgrind (one exact run a side) instead of CPU time",
    )
    parser.add_argument("functions", nargs="*", help="function names (default: every function)")
    args = parser.parse_args(argv)
    found = {p.parent.name for p in FUNCTIONS.glob("*/app.py")}
    missing = found - {fn.name for fn in CATALOGUE}
    if missing:
        parser.error(f"no benchmark entry for {sorted(missing)}")
    chosen = [fn for fn in CATALOGUE if not args.functions or fn.name in args.functions]
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (Debian: apt-get install valgrind)")
    if args.instructions:
        print(f"cold import, user-space instructions of one process a side (target <= {args.target}x)")
        # Exact counts: three decimals, so a ratio just over the target does not print as on it.
        unit, scale, digits = "M", 1e-6, 3
    else:
        print(
            f"cold import, median CPU time of {args.runs} fresh processes a side (target <= {args.target}x)"
        )
        unit, scale, digits = "ms", 1e3, 2
    print(f"{'function':<15}{'handler':>9}{'baseline':>10}{'ratio':>7}        {'floor':>5}  baseline")
    failed = []
    deployed = environment()
    for fn in chosen:
        m = (
            count(args.python, fn, deployed)
            if args.instructions
            else measure(args.python, fn, args.runs, deployed)
        )
        verdict = "PASS" if m.ratio <= args.target else "FAIL"
        if verdict == "FAIL":
            failed.append(fn.name)
        base = "boto3 + " + ", ".join(fn.aws) + (" + httpx" if fn.http else "") + " + Logger"
        floor = f"{m.floor:5.{digits}f}" if m.floor is not None else f"{'-':>5}"
        print(
            f"{fn.name:<15}{m.handler * scale:>7.0f}{unit:<2}{m.baseline * scale:>8.0f}{unit:<2}"
            f"{m.ratio:>7.{digits}f}  {verdict}  {floor}  {base}"
        )
    print(
        f"{len(chosen) - len(failed)}/{len(chosen)} functions within {args.target}x"
        + (f"; over: {', '.join(failed)}" if failed else "")
    )
    print("floor: the baseline plus importing pydantic and the job item's models, against the baseline")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
