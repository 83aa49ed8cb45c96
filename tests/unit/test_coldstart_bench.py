"""The cold-start benchmark measures what it says: every function, in the deployed environment."""

from __future__ import annotations

import shutil
import sys

import pytest

from fluxrelay_local import coldstart

FUNCTION_NAMES = sorted(p.parent.name for p in coldstart.FUNCTIONS.glob("*/app.py"))


def test_every_function_has_a_benchmark_entry() -> None:
    assert sorted(fn.name for fn in coldstart.CATALOGUE) == FUNCTION_NAMES


def test_the_processes_get_the_templates_fixed_settings() -> None:
    env = coldstart.environment()

    assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    assert env["POWERTOOLS_SERVICE_NAME"] == "fluxrelay"
    assert env["AWS_LAMBDA_FUNCTION_NAME"]  # Powertools behaves as in a deployed function


@pytest.mark.parametrize("fn", coldstart.CATALOGUE, ids=lambda fn: fn.name)
def test_each_handler_script_runs_and_only_the_authorizer_skips_pydantic(fn: coldstart.Function) -> None:
    # The script builds the services and clients the catalogue names: a wrong name fails here.
    env, script = coldstart.environment(), coldstart.handler_script(fn)

    assert coldstart.loads(sys.executable, script, "pydantic", env) is (fn.name != "authorizer")
    # The job item too: every function but the authorizer reads or writes a job, so it has a floor.
    assert coldstart.loads(sys.executable, script, coldstart.JOB_ITEM, env) is (fn.name != "authorizer")


def test_the_instruction_count_is_read_from_callgrinds_summary() -> None:
    stderr = "==4242== Events    : Ir\n==4242== Collected : 1086123456\n==4242== I   refs: 1,086,123,456\n"

    assert coldstart.collected_instructions(stderr) == 1_086_123_456
    with pytest.raises(RuntimeError, match="no instruction count"):
        coldstart.collected_instructions("valgrind: command failed")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_an_instruction_count_is_the_same_on_every_run() -> None:
    env = coldstart.environment()
    counts = {coldstart.count_instructions(sys.executable, "import json", env) for _ in range(2)}

    (count,) = counts
    assert count > coldstart.count_instructions(sys.executable, "pass", env) > 0


def test_the_floor_is_the_baseline_plus_the_job_item_alone() -> None:
    fn = next(fn for fn in coldstart.CATALOGUE if fn.name == "mark_failed")
    floor, env = coldstart.floor_script(fn), coldstart.environment()

    assert floor.startswith(coldstart.baseline_script(fn))
    assert coldstart.loads(sys.executable, floor, coldstart.JOB_ITEM, env)
    # Nothing of the function's own: no composition root, hence no service or adapter.
    assert not coldstart.loads(sys.executable, floor, "fluxrelay.composition", env)
