"""The local stack: the real SAM application on one machine, without an AWS account or Docker.

    moto server (in-process, executing Step Functions) ◄── the template, deployed by deploy.py
    handlers from functions/<name>/app.py, run in-process by lambdas.py
    HTTP API emulator (apigw.py) on api_port ──► authorizer + api function
    WaveSpeed stand-in on upstream_port (or the real API when a real key is given)
    the data (keys, jobs, outputs, webhook secrets, the stand-in's tasks) saved to state_dir on
    stop, restored on start, where the jobs in flight resume

One LocalStack per process at a time: moto's backends, MOTO_PORT and the handlers' environment
are process-wide.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import secrets
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fluxrelay_local.apigw import HttpApiEmulator, routes_from_template
from fluxrelay_local.config import (
    FAKE_CREDENTIALS,
    REAL_WAVESPEED_URL,
    LocalStackError,
    StackConfig,
    check_ports,
    signals_deferred,
)
from fluxrelay_local.deploy import DeployedStack, deploy_template
from fluxrelay_local.lambdas import LambdaRunner, function_env
from fluxrelay_local.moto_patches import (
    atomic_dynamodb_requests,
    cached_service_lookup,
    in_process_requests,
    parsed_once,
    plain_attribute_values,
    scaled_time,
    shared_lambda_clients,
)
from fluxrelay_local.persistence import Execution, Snapshot, StateStore
from fluxrelay_local.resources import StackResources

if TYPE_CHECKING:
    from fluxrelay_local.standin import StandIn

LOG = logging.getLogger(__name__)
# Names importers take from here: the stack's configuration lives beside it.
__all__ = ["FAKE_CREDENTIALS", "LocalStack", "LocalStackError", "StackConfig"]


class LocalStack:
    """Runs the SAM application locally. Use as a context manager, or start()/stop().

    Only one may run per process: moto's backends, MOTO_PORT, the Lambda patch and the handlers'
    environment are process-wide.
    """

    _active: LocalStack | None = None
    _active_lock = threading.Lock()

    def __init__(self, config: StackConfig | None = None, **overrides: Any) -> None:
        self.config = config or StackConfig()
        for key, value in overrides.items():
            setattr(self.config, key, value)
        self.deployed: DeployedStack | None = None
        self.runner: LambdaRunner | None = None
        self.api: HttpApiEmulator | None = None
        self.api_url = ""
        self.api_key = ""
        self.aws_endpoint_url = ""
        self.upstream_url = ""
        self.info: dict[str, Any] = {}
        self._moto: Any = None
        self._exits = ExitStack()  # moto patches undone at stop()
        self._standin: StandIn | None = None
        self._saved_sfn_config: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._state = StateStore(self.config.state_dir / "state")
        # Set once the stack is fully up: only then is there complete data worth saving on stop.
        self._ready = False
        self._started = False
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        with self._lock:
            if self._started:
                return self
            with LocalStack._active_lock:
                if LocalStack._active is not None:
                    raise LocalStackError("another LocalStack is running in this process; stop it first")
                LocalStack._active = self
            self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cfg = self.config
        check_ports(cfg)
        self._start_moto()
        self._start_upstream()
        overrides: dict[str, str] = {}
        declared = self._declared_parameters()
        if "WaveSpeedBaseUrl" in declared and self.upstream_url:
            overrides["WaveSpeedBaseUrl"] = self.upstream_url
        if "UrlPolicy" in declared:
            overrides["UrlPolicy"] = cfg.url_policy
        overrides.update(cfg.parameter_overrides)
        self._exits.enter_context(scaled_time(cfg.time_scale))
        self.deployed = deploy_template(
            cfg.template,
            stack_name=cfg.stack_name,
            region=cfg.region,
            parameter_overrides=overrides,
            wavespeed_api_key=self._upstream_key,
            on_functions_ready=self._install_runner,
        )
        self._start_api()
        self._start_schedules()
        assert self.deployed is not None
        if not any("PUBLIC_BASE_URL" in f.environment for f in self.deployed.functions.values()):
            # API Gateway's domain is https without a port; here `urls.get` must name this server.
            self._set_env({"PUBLIC_BASE_URL": self.api_url})
            self._clear_settings_cache()
        snapshot = self._restore()
        self._create_dev_key(snapshot.dev_key)
        # What exists now (moto's backends, the deployed template, every handler's modules) lives
        # as long as the stack. On AWS each function is a small process of its own; here one
        # process holds it all, and each full collection walked all of it, pausing every job in
        # flight (a few hundred ms). Frozen, collections walk only what came later; unfrozen at stop.
        gc.freeze()
        self._exits.callback(gc.unfreeze)
        self._resume(snapshot.executions)
        self._ready = True
        self.info = self._describe()
        if cfg.write_state_file:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps(self.info, indent=2) + "\n", encoding="utf-8")

    def stop(self) -> None:
        """Save the data (when persisting), stop the API server, the stand-in and moto, restore
        the environment and remove the state file. Idempotent."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        if self.config.write_state_file:
            self.state_file.unlink(missing_ok=True)
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self._moto is not None:
            # Before the functions go: running executions would call them on a dead stack.
            running = self.stop_executions()
            if self._ready and self.config.persist:
                self._save(running)
        self._ready = False
        if self._standin is not None:
            try:
                self._standin.stop()
            finally:
                self._standin = None
        if self.runner is not None:
            self.runner.uninstall()
            self.runner = None
        if self._moto is not None:
            # Forget every resource: moto's backends are process-wide and outlive the server.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            from moto.core.config import default_user_config

            if self._saved_sfn_config is not None:
                default_user_config["stepfunctions"] = self._saved_sfn_config
            self._moto.stop()
            # ThreadedMotoServer.stop() shuts the loop down but leaves the socket bound.
            if self._moto._server is not None:
                self._moto._server.server_close()
            self._moto = None
        self._exits.close()
        self._restore_env()
        self._clear_settings_cache(load=False)
        with LocalStack._active_lock:
            if LocalStack._active is self:
                LocalStack._active = None

    def stop_executions(self) -> list[Execution]:
        """Stop every running execution (their threads would go on calling a dead stack) and
        return what is needed to start them again. `stop()` does this before it saves."""
        stopped: list[Execution] = []
        if self.deployed is None:
            return stopped
        try:
            sfn = self.client("stepfunctions")
            for logical_id, arn in self.deployed.state_machines.items():
                pages = sfn.get_paginator("list_executions").paginate(
                    stateMachineArn=arn, statusFilter="RUNNING"
                )
                for page in pages:
                    for execution in page["executions"]:
                        described = sfn.describe_execution(executionArn=execution["executionArn"])
                        sfn.stop_execution(
                            executionArn=execution["executionArn"], cause="local stack stopped"
                        )
                        stopped.append(Execution(logical_id, execution["name"], described["input"]))
        except Exception as exc:  # best effort on the way down; never mask the shutdown
            LOG.warning("could not stop running executions: %s", exc)
        return stopped

    # --- persistence ------------------------------------------------------------------------------
    def _save(self, running: list[Execution]) -> None:
        assert self.deployed is not None
        try:
            standin = self._standin.export_state() if self._standin is not None else None
            snapshot = Snapshot(self.api_key or None, running, standin)
            self._state.save(self.deployed, self.client, snapshot, self._endpoints)
        except Exception as exc:  # the previous snapshot stays; never mask the shutdown
            LOG.error("could not save the local stack's data to %s: %s", self._state.folder, exc)
            return
        LOG.info("data saved to %s (%d running jobs to resume)", self._state.folder, len(running))

    def _restore(self) -> Snapshot:
        if not (self.config.persist and self._state.exists):
            return Snapshot()
        assert self.deployed is not None
        snapshot = self._state.restore(self.deployed, self.client, self._endpoints)
        if snapshot.standin and self._standin is not None:
            # Before any workflow resumes: each asks the stand-in for its task.
            try:
                self._standin.restore_state(snapshot.standin)
            except ValueError as exc:  # saved by another version: its jobs end as upstream-lost
                LOG.warning("the stand-in's saved tasks are not restored: %s", exc)
        LOG.info("data restored from %s", self._state.folder)
        return snapshot

    def _resume(self, executions: list[Execution]) -> None:
        """Start the workflows that were running at the last stop again, under their own names
        (a job id), from the beginning: each first checks its job, so none is submitted twice."""
        assert self.deployed is not None
        sfn = self.client("stepfunctions")
        for execution in executions:
            try:
                sfn.start_execution(
                    stateMachineArn=self.deployed.state_machines[execution.state_machine],
                    name=execution.name,
                    input=execution.input,
                )
            except Exception as exc:  # one workflow that cannot resume must not stop the stack
                LOG.warning("could not resume execution %s: %s", execution.name, exc)

    @property
    def _endpoints(self) -> dict[str, str]:
        """This run's own base URLs, rewritten in restored data when they changed."""
        return {"api": self.api_url, "upstream": self.upstream_url if self._standin else ""}

    @property
    def state_file(self) -> Path:
        return self.config.state_dir / "stack.json"

    # --- pieces -----------------------------------------------------------------------------------
    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env = {}

    @staticmethod
    def _clear_settings_cache(*, load: bool = True) -> None:
        """Forget the handlers' cached settings and clients. While starting, the composition root
        is loaded here, with the functions' environment in place (its Powertools objects read
        that environment once, on import); on the way down it is only reset if already loaded, so
        a stop does not spend a second importing it."""
        if load:
            try:
                from fluxrelay import composition
            except ImportError:  # the harness works for any template, fluxrelay or not
                return
        else:
            composition = sys.modules.get("fluxrelay.composition")  # type: ignore[assignment]
            if composition is None:
                return
        composition.reset()

    def _start_moto(self) -> None:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        cfg = self.config
        # Executing state machines is a process-wide moto switch; no env var exists for it.
        self._saved_sfn_config = default_user_config.get("stepfunctions")
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        self._exits.enter_context(atomic_dynamodb_requests())
        self._exits.enter_context(cached_service_lookup())
        self._exits.enter_context(plain_attribute_values())
        self._exits.enter_context(parsed_once())
        self._exits.enter_context(shared_lambda_clients())
        self._moto = ThreadedMotoServer(ip_address=cfg.host, port=cfg.aws_port, verbose=False)
        with signals_deferred():
            self._moto.start()
        _, port = self._moto.get_host_and_port()
        self.aws_endpoint_url = f"http://127.0.0.1:{port}"
        # The handlers' endpoint, and the one the Step Functions interpreter calls Lambda at.
        endpoints = (self.aws_endpoint_url, f"http://localhost:{port}")
        self._exits.enter_context(in_process_requests(self._moto._server.app, endpoints))
        self._set_env(
            {
                # The Step Functions interpreter calls Lambda at http://localhost:$MOTO_PORT.
                "MOTO_PORT": str(port),
                **FAKE_CREDENTIALS,
                "AWS_DEFAULT_REGION": cfg.region,
                "AWS_REGION": cfg.region,
                "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            }
        )
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            if var in os.environ:
                self._saved_env.setdefault(var, os.environ[var])
                del os.environ[var]

    @property
    def standin(self) -> StandIn | None:
        """The in-process WaveSpeed stand-in (None with a real key, or when turned off): its
        faults, recorded traffic and tasks."""
        return self._standin

    @property
    def _upstream_key(self) -> str | None:
        return self.config.wavespeed_api_key or (self._standin.api_key if self._standin else None)

    def _start_upstream(self) -> None:
        cfg = self.config
        if cfg.wavespeed_api_key:
            self.upstream_url = REAL_WAVESPEED_URL
            return
        if not cfg.standin:
            return
        from fluxrelay_local.standin import StandIn

        key = "standin_" + secrets.token_urlsafe(24)
        with signals_deferred():
            self._standin = StandIn(host=cfg.host, port=cfg.upstream_port, api_key=key, **cfg.standin_options)
            self._standin.start()
        self.upstream_url = self._standin.url.rstrip("/")

    def _declared_parameters(self) -> set[str]:
        from fluxrelay_local.deploy import load_template

        return set((load_template(self.config.template).get("Parameters") or {}).keys())

    def _install_runner(self, deployed: DeployedStack) -> None:
        self.runner = LambdaRunner(deployed.functions, region=self.config.region)
        self._set_env(function_env(deployed.functions, self.config.region))
        self._clear_settings_cache()
        self.runner.install()

    def _start_schedules(self) -> None:
        assert self.deployed is not None
        scheduled = self.resources.scheduled_functions()
        if not scheduled or self.config.schedule_seconds <= 0:
            return
        stopped = threading.Event()
        self._exits.callback(stopped.set)
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

        def tick() -> None:
            while not stopped.wait(self.config.schedule_seconds):
                for logical_id in scheduled:
                    runner = self.runner
                    if runner is None:
                        return
                    try:
                        runner.invoke(logical_id, event)
                    except Exception as exc:  # a failed run is repeated by the next tick, as on AWS
                        LOG.warning("scheduled %s failed: %s", logical_id, exc)

        threading.Thread(target=tick, name="local-schedules", daemon=True).start()

    def _start_api(self) -> None:
        assert self.deployed is not None
        assert self.runner is not None
        routes = routes_from_template(self.deployed.sam_template)
        self.api = HttpApiEmulator(
            routes,
            self.runner.invoke_as_lambda,
            region=self.config.region,
            stack_name=self.config.stack_name,
            integration_timeout=self.config.integration_timeout,
        )
        with signals_deferred():
            port = self.api.start(self.config.host, self.config.api_port)
        self.api_url = f"http://{self.config.host}:{port}"
        if self.config.host in ("0.0.0.0", "::"):
            self.api_url = f"http://127.0.0.1:{port}"

    def _create_dev_key(self, remembered: str | None) -> None:
        """The development key: the one from the last run while it is still active, else a new one."""
        table = self.table
        if not table:
            return
        try:
            from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
        except ImportError:  # the harness works for any template, fluxrelay or not
            return
        store = DynamoApiKeyStore(table)
        if remembered and store.lookup(remembered) is not None:
            self.api_key = remembered
            return
        self.api_key, _ = store.create(self.config.dev_key_owner)

    # --- what tests and the CLI read --------------------------------------------------------------
    @property
    def resources(self) -> StackResources:
        if self.deployed is None:
            raise LocalStackError("the stack is not started")
        return StackResources(self.deployed, self.config.region)

    @property
    def table(self) -> str:
        return self.resources.table

    @property
    def bucket(self) -> str:
        return self.resources.bucket

    @property
    def topic_arn(self) -> str:
        return self.resources.topic_arn

    @property
    def state_machine_arn(self) -> str:
        return self.resources.state_machine_arn

    @property
    def functions(self) -> dict[str, str]:
        """Logical id → deployed function name."""
        return self.resources.functions

    @property
    def _upstream_kind(self) -> str:
        if self.config.wavespeed_api_key:
            return "wavespeed"
        return "standin" if self._standin else "none"

    def _describe(self) -> dict[str, Any]:
        return {
            **self.resources.describe(
                api_url=self.api_url,
                api_key=self.api_key,
                aws_endpoint_url=self.aws_endpoint_url,
                region=self.config.region,
                stack_name=self.config.stack_name,
                upstream_url=self.upstream_url,
                upstream=self._upstream_kind,
            ),
            "url_policy": self.config.url_policy,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    # --- helpers for tests ------------------------------------------------------------------------
    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call a function's handler in-process (same context and environment as moto's path);
        its exceptions propagate."""
        if self.runner is None:
            raise LocalStackError("the stack is not started")
        return self.runner.invoke(logical_id, event)

    def client(self, service: str) -> Any:
        """A boto3 client for the emulated AWS."""
        import boto3

        return boto3.client(service, region_name=self.config.region, endpoint_url=self.aws_endpoint_url)

    def wait_for_execution(self, execution_arn: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll DescribeExecution until the execution leaves RUNNING (bounded by `timeout`)."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still RUNNING after {timeout}s")
            time.sleep(0.02)
