"""Loading a function's handler module in-process, as Lambda does, with a stand-in context."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@dataclass
class Ctx:
    """The LambdaContext attributes Powertools reads."""

    function_name: str = "api"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id: str = "req"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_handler(name: str) -> ModuleType:
    """A fresh copy of `functions/<name>/app.py` (its own module state, e.g. a warm cache)."""
    spec = importlib.util.spec_from_file_location(f"{name}_app_under_test", FUNCTIONS / name / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
