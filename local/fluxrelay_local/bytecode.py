"""Bytecode benchmark: what shipping the layer's bytecode saves a deployed function's cold start.

In Lambda the layer sits on a read-only /opt, so a module whose .pyc is missing or stale is
compiled from source at every cold start, and SAM's zip dates every file 1980-01-01, which makes
every .pyc pip writes (checked against its source's time) stale. This builds the layer for this
machine with the runtime's Python (the same pins, native wheels instead of arm64 ones), dates its
files as SAM's zip does, and measures each function's cold start (`coldstart.handler_script`) in
fresh processes that cannot write a bytecode cache: first as the layer was shipped before (pip's
.pyc, none for our package), then after the layer Makefile's `bytecode` step. CPU time, median
of RUNS processes a side, interleaved.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fluxrelay_local.coldstart import CATALOGUE, REPO_ROOT, environment, handler_script, run_once

LAYER = REPO_ROOT / "layers" / "fluxrelay"
RUNTIME = (3, 13)
SAM_ZIP_TIME = 315_532_800  # 1980-01-01T00:00:00Z: a zip entry without a time


def build_layer(python: str, root: Path) -> Path:
    """The layer's `python/` directory as `build-FluxRelayLayer` makes it, minus the bytecode step,
    for this machine's platform."""
    target = root / "python"
    shutil.copytree(LAYER / "fluxrelay", target / "fluxrelay", ignore=shutil.ignore_patterns("__pycache__"))
    # Our own interpreter and our own pins, installed as the layer build installs them.
    subprocess.run(  # noqa: S603
        [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
            str(LAYER / "requirements.txt"),
            "--target",
            str(target),
        ],
        check=True,
    )
    return target


def date_as_sam_zips(target: Path) -> None:
    """Every file and folder dated as a deployed layer's are: SAM's zip sets no entry time."""
    for path in target.rglob("*"):
        os.utime(path, (SAM_ZIP_TIME, SAM_ZIP_TIME), follow_symlinks=False)


def compile_bytecode(python: str, root: Path) -> None:
    """The layer Makefile's own `bytecode` step."""
    make = shutil.which("make") or "make"
    subprocess.run(  # noqa: S603
        [
            make,
            "--no-print-directory",
            "--silent",
            "-C",
            str(LAYER),
            "bytecode",
            f"ARTIFACTS_DIR={root}",
            f"PYTHON={python}",
        ],
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--python", required=True, help="the runtime's interpreter (Python 3.13)")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "5")))
    parser.add_argument("functions", nargs="*", help="function names (default: every function)")
    args = parser.parse_args(argv)
    version = subprocess.run(  # noqa: S603
        [args.python, "-c", "import sys; print(*sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if tuple(map(int, version)) != RUNTIME:
        parser.error(
            f"--python must be the runtime's Python {RUNTIME[0]}.{RUNTIME[1]}, not {'.'.join(version)}"
        )
    chosen = [fn for fn in CATALOGUE if not args.functions or fn.name in args.functions]
    with tempfile.TemporaryDirectory(prefix="fluxrelay-layer-") as tmp:
        root = Path(tmp)
        target = build_layer(args.python, root)
        date_as_sam_zips(target)
        # No cache can be written, as on /opt; the layer comes first on the path, as in Lambda.
        deployed = {**environment(), "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
        before = {
            fn.name: [run_once(args.python, handler_script(fn), deployed) for _ in range(args.runs)]
            for fn in chosen
        }
        compile_bytecode(args.python, root)
        date_as_sam_zips(target)
        after = {
            fn.name: [run_once(args.python, handler_script(fn), deployed) for _ in range(args.runs)]
            for fn in chosen
        }
    print(
        f"cold start without a writable bytecode cache, files dated as SAM zips them; median CPU time of "
        f"{args.runs} fresh processes (Python {RUNTIME[0]}.{RUNTIME[1]})"
    )
    print(f"{'function':<15}{'before':>8}{'after':>8}{'saved':>8}")
    for fn in chosen:
        b, a = statistics.median(before[fn.name]), statistics.median(after[fn.name])
        print(f"{fn.name:<15}{b * 1e3:>6.0f}ms{a * 1e3:>6.0f}ms{(b - a) / b:>7.0%}")
    print(
        "before: pip's .pyc (stale: their sources' times changed) and none for fluxrelay; "
        "after: the layer Makefile's bytecode step"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
