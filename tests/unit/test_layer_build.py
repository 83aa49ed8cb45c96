"""The layer ships bytecode that a function uses as it is, whatever the unzip does to file times."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from fluxrelay_local.bytecode import LAYER, compile_bytecode, date_as_sam_zips


def _loaded_from(artifacts: Path) -> list[str]:
    """What each module of the package was loaded from, as `python -v` says ("# code object from
    <the .pyc it used, or the source it compiled>"), importing with no writable cache, as on /opt."""
    env = {"PYTHONPATH": str(artifacts / "python"), "PYTHONDONTWRITEBYTECODE": "1"}
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
        cwd=artifacts,
    ).stderr
    prefixes = (f"# code object from {artifacts}", f"# code object from '{artifacts}")
    return [line.rstrip("'") for line in imported.splitlines() if line.startswith(prefixes)]


def test_every_layer_module_loads_from_its_bytecode_with_sams_file_times(tmp_path: Path) -> None:
    package = tmp_path / "python" / "fluxrelay"
    shutil.copytree(LAYER / "fluxrelay", package, ignore=shutil.ignore_patterns("__pycache__"))
    # The layer Makefile's own step, with this interpreter in place of the runtime's.
    compile_bytecode(sys.executable, tmp_path)
    date_as_sam_zips(tmp_path / "python")

    loaded = _loaded_from(tmp_path)

    assert [line for line in loaded if line.endswith(".py")] == []  # nothing compiled from source
    assert len([line for line in loaded if line.endswith(".pyc")]) >= 20


def test_without_the_step_the_package_is_compiled_at_every_start(tmp_path: Path) -> None:
    package = tmp_path / "python" / "fluxrelay"
    shutil.copytree(LAYER / "fluxrelay", package, ignore=shutil.ignore_patterns("__pycache__"))
    # Timestamp-checked bytecode, as pip writes it, then the times SAM's zip gives every file.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)  # noqa: S603
    date_as_sam_zips(tmp_path / "python")

    loaded = _loaded_from(tmp_path)

    assert len([line for line in loaded if line.endswith(".py")]) >= 20
