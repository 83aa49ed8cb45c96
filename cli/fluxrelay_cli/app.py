"""The `fluxrelay` command (Typer + Rich). `fluxrelay --help` lists the commands.

Every command finds its stack by itself (see `target`), prints results on stdout (`--json` for
scripts) and progress on stderr, and fails with one line and a non-zero exit code.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console

from fluxrelay_cli.client import FluxRelayClient
from fluxrelay_cli.target import CliError, api_target

# No markup or highlighting: prompts, errors and job fields are shown exactly as they are.
out = Console(markup=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="fluxrelay",
    help="Generate images with fluxrelay, follow jobs, manage API keys, receive and replay webhooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def print_json(data: Any, indent: int | None = 2) -> None:
    """JSON for scripts on stdout: plain text, never styled or wrapped (indent=None: one line)."""
    sys.stdout.write(json.dumps(data, indent=indent) + "\n")
    sys.stdout.flush()


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (None = left out), as the API's filters or body fields."""
    return {name: value for name, value in options.items() if value is not None}


@dataclass
class Options:
    api_url: str | None
    api_key: str | None
    stack_file: Path | None

    def client(self) -> FluxRelayClient:
        return FluxRelayClient(api_target(self.api_url, self.api_key, self.stack_file))


@app.callback()
def root(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            envvar="FLUXRELAY_API_URL", help="A deployed stack's ApiUrl (default: the local stack)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="FLUXRELAY_API_KEY", help="The API key (default: the local stack's dev key)."),
    ] = None,
    stack_file: Annotated[
        Path | None,
        typer.Option(
            envvar="FLUXRELAY_STACK_FILE",
            help="The local stack's description (default: .local/stack.json here or in a parent folder).",
        ),
    ] = None,
) -> None:
    ctx.obj = Options(api_url, api_key, stack_file)


def _register() -> None:
    # Command modules import `app`, `out`, `err` from here, so they are imported after them.
    from fluxrelay_cli import generate, jobs, keys, receiver, webhooks  # noqa: F401


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends a command like Ctrl-C does (a receiver or a watch stops cleanly).
    raise KeyboardInterrupt


def main() -> None:
    _register()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except CliError as exc:
        err.print(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # The one boundary: whatever slipped through is still one line, never a traceback.
        err.print(f"error: unexpected {type(exc).__name__}: {exc}")
        sys.exit(1)
