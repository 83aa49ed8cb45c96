"""Fixtures shared by the integration and e2e suites.

Only one LocalStack can run per process (moto's backends and the handlers' environment are
process-wide), so the real-template stack is module-scoped: each module gets a fresh one, and
the harness's own fixture-template tests never overlap with it. A module can change the stack's
parameters by overriding `stack_options`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fluxrelay_local.stack import LocalStack
from fluxrelay_local.standin import StandIn
from tests.support.stack import Api, api_for, standin_of, start_stack


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_options: dict[str, Any]) -> Iterator[LocalStack]:
    s = start_stack(tmp_path_factory.mktemp("stack"), **stack_options)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def alice(stack: LocalStack) -> Api:
    return api_for(stack, "alice")


@pytest.fixture(scope="module")
def bob(stack: LocalStack) -> Api:
    return api_for(stack, "bob")


@pytest.fixture
def standin(stack: LocalStack) -> Iterator[StandIn]:
    """The stack's WaveSpeed stand-in, with its faults cleared again after the test."""
    upstream = standin_of(stack)
    yield upstream
    upstream.clear_faults()
