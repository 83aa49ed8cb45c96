"""How the local stack runs: its settings, read from the environment by `make run`, and the
checks made before anything starts (ports free, signals held while a server starts)."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_WAVESPEED_URL = "https://api.wavespeed.ai"
# The variable that sets each port, named in the error when a port is taken.
PORT_VARIABLES = {"api_port": "API_PORT", "upstream_port": "UPSTREAM_PORT", "aws_port": "AWS_PORT"}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class LocalStackError(RuntimeError):
    pass


class PortInUseError(LocalStackError):
    """A configured port is taken; the message names the port and the variable that sets it."""


@dataclass
class StackConfig:
    """How to run the local stack. Ports 0 pick free ports (what tests use)."""

    api_port: int = 3000
    upstream_port: int = 3001
    aws_port: int = 4566
    host: str = "127.0.0.1"
    template: Path = field(default_factory=lambda: REPO_ROOT / "template.yaml")
    stack_name: str = "fluxrelay-local"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    state_dir: Path = field(default_factory=lambda: Path(".local"))
    # A real WaveSpeed key: use https://api.wavespeed.ai and no stand-in.
    wavespeed_api_key: str | None = None
    # "development" lets handlers fetch/post http:// on loopback (local webhooks, the stand-in).
    url_policy: str = "development"
    # Start the WaveSpeed stand-in (ignored with a real key). Harness tests of templates that
    # never call upstream turn it off.
    standin: bool = True
    # Passed through to StandIn(...), e.g. {"seconds_per_image": 0.05}.
    standin_options: dict[str, Any] = field(default_factory=dict)
    # Multiplies every Step Functions Wait and Retry interval (1.0 = real time; tests use ~0.001).
    time_scale: float = 1.0
    integration_timeout: float = 30.0
    dev_key_owner: str = "dev"
    write_state_file: bool = True
    # Save the data to state_dir/state when the stack stops and put it back when it starts.
    persist: bool = True
    # Every function with a Schedule event (the sweeper) runs this often, as EventBridge would
    # run it on AWS; 0 = never (tests invoke it themselves).
    schedule_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **kwargs: Any) -> StackConfig:
        """The CLI's config: API_PORT, UPSTREAM_PORT, AWS_PORT, WAVESPEED_API_KEY, FLUXRELAY_URL_POLICY,
        NSFW_POLICY (the template's NsfwPolicy)."""
        env = dict(os.environ if env is None else env)
        config = cls(**kwargs)
        for attr, name in PORT_VARIABLES.items():
            if env.get(name):
                try:
                    setattr(config, attr, int(env[name]))
                except ValueError:
                    raise LocalStackError(f"{name} must be a port number, not {env[name]!r}") from None
        if env.get("WAVESPEED_API_KEY"):
            config.wavespeed_api_key = env["WAVESPEED_API_KEY"]
        if env.get("FLUXRELAY_URL_POLICY"):
            config.url_policy = env["FLUXRELAY_URL_POLICY"]
        if env.get("NSFW_POLICY"):
            config.parameter_overrides["NsfwPolicy"] = env["NSFW_POLICY"]
        return config

    @property
    def uses_standin(self) -> bool:
        return self.standin and not self.wavespeed_api_key


def check_ports(cfg: StackConfig) -> None:
    """Fail at once, naming the port and its variable, when a configured port is taken (the
    servers would otherwise fail in their own threads, leaving start-up waiting forever)."""
    seen: dict[int, str] = {}
    for attr, variable in PORT_VARIABLES.items():
        port = getattr(cfg, attr)
        if not port or (attr == "upstream_port" and not cfg.uses_standin):
            continue
        if port in seen:
            raise PortInUseError(f"{variable} and {seen[port]} are both {port}: give each its own port")
        seen[port] = variable
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers bind: a port left in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((cfg.host, port))
            except OSError:
                raise PortInUseError(
                    f"port {port} is in use ({variable}): stop what listens there, "
                    f"or choose another port, e.g. {variable}={port + 100} make run"
                ) from None


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back while a server starts, then deliver them.

    A server interrupted between binding its socket and starting its serving thread can never be
    shut down (socketserver's shutdown() waits for a loop that never ran), so a signal there would
    hang the stop that follows. Outside the main thread (where handlers cannot be set) this does
    nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    watched = (signal.SIGTERM, signal.SIGINT)
    saved = {signum: signal.signal(signum, lambda got, _: pending.append(got)) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        for held in dict.fromkeys(pending):
            signal.raise_signal(held)
