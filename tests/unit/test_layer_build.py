"""The layer ships bytecode that a function uses as it is, whatever the unzip does to file times."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "fluxrelay"


def test_every_layer_module_loads_from_its_bytecode_even_with_changed_file_times(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(
        LAYER / "fluxrelay", artifacts / "python" / "fluxrelay", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The build's own step, with this interpreter in place of the runtime's.
    make = shutil.which("make")
    assert make is not None
    subprocess.run(  # noqa: S603
        [
            make,
            "--no-print-directory",
            "-C",
            str(LAYER),
            "bytecode",
            f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        capture_output=True,
    )
    sources = sorted((artifacts / "python").rglob("*.py"))
    # As in Lambda: SAM's zip sets no time on its entries, so every file is dated 1980-01-01.
    for source in sources:
        os.utime(source, (315_532_800, 315_532_800))
    env = {**os.environ, "PYTHONPATH": str(artifacts / "python"), "PYTHONDONTWRITEBYTECODE": "1"}

    # -v names, for each module, the .pyc it used or the source it compiled.
    imported = subprocess.run(
        [
            sys.executable,
            "-v",
            "-c",
            "import fluxrelay.composition, fluxrelay.domain.jobs, fluxrelay.api.app",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stderr

    loaded = [
        line.rstrip("'")
        for line in imported.splitlines()
        if line.startswith(f"# code object from {artifacts}")
        or line.startswith(f"# code object from '{artifacts}")
    ]
    compiled = [line for line in loaded if line.endswith(".py")]
    used = [line for line in loaded if line.endswith(".pyc")]
    assert compiled == []
    assert len(used) >= 20  # the package's modules those imports load, every one from bytecode
    assert all((source.parent / "__pycache__").is_dir() for source in sources)
