"""Run the deployed Lambda functions in-process instead of in Docker.

moto runs Lambda code only in Docker, and the one method that touches Docker is
`LambdaFunction._invoke_lambda(self, event) -> (payload_str, errored, logs)`. Replacing it makes
every moto path run the real handlers from the working tree: `lambda.invoke`, Step Functions tasks
(plain ARNs and `lambda:invoke`), SQS event-source mappings, S3/SNS → Lambda.

All handlers share this one process, so they share one environment: the union of the deployed
functions' `Environment.Variables` (as resolved by moto's CloudFormation). Two functions that
disagree on a value cannot both be served faithfully, so that is an error, not a silent pick.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from fluxrelay_local.deploy import FunctionInfo

LOG = logging.getLogger(__name__)

# Set for every handler: no X-Ray daemon and no CloudWatch metrics sink exist locally.
LOCAL_LAMBDA_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
_module_counter = itertools.count()


class EnvironmentConflictError(RuntimeError):
    """Two deployed functions set the same environment variable to different values."""


@dataclass
class LambdaContext:
    """The attributes of the Lambda Python runtime's context object that handlers use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_epoch: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_epoch - time.time()) * 1000))


def merged_environment(functions: dict[str, FunctionInfo]) -> dict[str, str]:
    """The union of the functions' environment variables; raises on a conflicting value."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for fn in functions.values():
        for key, value in fn.environment.items():
            if key in merged and merged[key] != value:
                raise EnvironmentConflictError(
                    f"{key} is {merged[key]!r} on {owner[key]} but {value!r} on {fn.logical_id}: "
                    "the local stack runs all handlers in one process with one environment"
                )
            merged[key] = value
            owner[key] = fn.logical_id
    return merged


def lambda_error(exc: BaseException) -> dict[str, Any]:
    """The Lambda runtime's error payload; Step Functions Retry/Catch match `errorType`."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": [line.rstrip("\n") for line in traceback.format_tb(exc.__traceback__)],
    }


class LambdaRunner:
    """Loads each function's handler module once and invokes it with a Lambda-like context."""

    def __init__(self, functions: dict[str, FunctionInfo], *, region: str) -> None:
        self.functions = functions
        self.region = region
        self._by_name = {fn.name: fn for fn in functions.values()}
        self._by_name.update({fn.arn: fn for fn in functions.values()})
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._modules: dict[str, ModuleType] = {}
        self._load_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.invocations: Counter[str] = Counter()
        self._instance = next(_module_counter)
        self._original_invoke: Any = None

    # --- lookup -------------------------------------------------------------------------------
    def function(self, name_or_logical_id: str) -> FunctionInfo:
        if name_or_logical_id in self.functions:
            return self.functions[name_or_logical_id]
        found = self._by_name.get(name_or_logical_id)
        if found is None:
            raise KeyError(f"no local function {name_or_logical_id!r}")
        return found

    def module(self, logical_id: str) -> ModuleType:
        """The loaded handler module of a function (loaded on first use)."""
        self._handler(self.function(logical_id))
        return self._modules[logical_id]

    def _handler(self, fn: FunctionInfo) -> Callable[[Any, Any], Any]:
        handler = self._handlers.get(fn.logical_id)
        if handler is not None:
            return handler
        with self._load_lock:
            if fn.logical_id not in self._handlers:
                self._handlers[fn.logical_id] = self._load(fn)
            return self._handlers[fn.logical_id]

    def _load(self, fn: FunctionInfo) -> Callable[[Any, Any], Any]:
        module_path, _, attr = fn.handler.rpartition(".")
        source = fn.code_dir / (module_path.replace(".", "/") + ".py")
        if not source.is_file():
            raise FileNotFoundError(f"{fn.logical_id}: handler {fn.handler} not found at {source}")
        # Every function's module is called app.py: give each a unique name, load it once.
        name = f"_fluxrelay_local_fn{self._instance}_{fn.logical_id}"
        spec = importlib.util.spec_from_file_location(name, source)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # Lambda puts the function's code directory first on sys.path (sibling imports).
        sys.path.insert(0, str(fn.code_dir))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(fn.code_dir))
        self._modules[fn.logical_id] = module
        return getattr(module, attr)

    # --- invocation -----------------------------------------------------------------------------
    def context_for(self, fn: FunctionInfo) -> LambdaContext:
        request_id = str(uuid.uuid4())
        day = time.strftime("%Y/%m/%d", time.gmtime())
        return LambdaContext(
            function_name=fn.name,
            function_version="$LATEST",
            invoked_function_arn=fn.arn,
            memory_limit_in_mb=fn.memory_mb,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{fn.name}",
            log_stream_name=f"{day}/[$LATEST]{request_id.replace('-', '')}",
            deadline_epoch=time.time() + fn.timeout,
        )

    def invoke(self, name_or_logical_id: str, event: Any) -> Any:
        """Call the handler directly; exceptions propagate to the caller."""
        fn = self.function(name_or_logical_id)
        handler = self._handler(fn)
        with self._count_lock:
            self.invocations[fn.logical_id] += 1
        try:
            return handler(event, self.context_for(fn))
        finally:
            _drop_unpublished_metrics()

    def invoke_as_lambda(self, name_or_logical_id: str, event: Any) -> tuple[str, bool, str]:
        """Invoke like the Lambda service: (JSON payload, errored, logs)."""
        fn = self.function(name_or_logical_id)
        try:
            result = self.invoke(fn.logical_id, event)
        except Exception as exc:  # a boundary: every handler error becomes the Lambda error shape
            LOG.warning("%s raised %s: %s", fn.logical_id, type(exc).__name__, exc, exc_info=exc)
            return json.dumps(lambda_error(exc)), True, ""
        try:
            return json.dumps(result), False, ""
        except (TypeError, ValueError) as exc:
            # The runtime fails the invocation when the result is not JSON-serialisable.
            return json.dumps(lambda_error(exc) | {"errorType": "Runtime.MarshalError"}), True, ""

    # --- moto integration -------------------------------------------------------------------------
    def install(self) -> None:
        """Route moto's Lambda invocations for the deployed functions to this runner."""
        from moto.awslambda.models import LambdaFunction

        if self._original_invoke is not None:
            return
        runner = self
        original = LambdaFunction._invoke_lambda

        def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
            if isinstance(event, str | bytes):
                event = json.loads(event or "{}")
            if self.function_name not in runner._by_name:
                message = f"function {self.function_name} is not served by the local stack"
                return json.dumps({"errorMessage": message, "errorType": "ResourceNotFound"}), True, ""
            return runner.invoke_as_lambda(self.function_name, event if event is not None else {})

        self._original_invoke = original
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]

    def uninstall(self) -> None:
        from moto.awslambda.models import LambdaFunction

        if self._original_invoke is not None:
            LambdaFunction._invoke_lambda = self._original_invoke  # type: ignore[method-assign]
            self._original_invoke = None
        for logical_id in list(self._modules):
            sys.modules.pop(f"_fluxrelay_local_fn{self._instance}_{logical_id}", None)


def _drop_unpublished_metrics() -> None:
    """End an invocation's metrics as Lambda does (its container's output goes to CloudWatch).

    With POWERTOOLS_METRICS_DISABLED, Powertools' `log_metrics` neither prints nor clears its
    process-wide metric set; here every invocation shares the process, so after 100 metrics
    `add_metric` would try to serialise them and fail every handler with a 500. With metrics on,
    `log_metrics` flushes them itself, and clearing here would drop the metrics another thread's
    invocation has added but not yet flushed."""
    module = sys.modules.get("aws_lambda_powertools.metrics.metrics")
    if module is None:
        return
    if is_metrics_disabled():
        module.Metrics().clear_metrics()


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, restoring the previous state."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def function_env(functions: dict[str, FunctionInfo], region: str) -> dict[str, str]:
    """The process environment every handler sees (AWS_LAMBDA_FUNCTION_NAME is deliberately absent:
    one process serves several functions)."""
    env = merged_environment(functions)
    env.update(LOCAL_LAMBDA_ENV)
    env.setdefault("AWS_REGION", region)
    return env


__all__ = [
    "EnvironmentConflictError",
    "LambdaContext",
    "LambdaRunner",
    "function_env",
    "lambda_error",
    "merged_environment",
    "patched_environ",
]
