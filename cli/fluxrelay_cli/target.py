"""Which fluxrelay a command talks to.

In order: the `--api-url` / `--api-key` flags, the FLUXRELAY_API_URL / FLUXRELAY_API_KEY
variables, then the local stack's `.local/stack.json` (looked for in the current directory and
its parents, as `make run` writes it at the repository root). A key given alone is used with
the local stack's URL, so another owner's key can be tried locally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STACK_FILE = Path(".local") / "stack.json"
START_HINT = "start it with `make run`, or set FLUXRELAY_API_URL and FLUXRELAY_API_KEY"


class CliError(Exception):
    """A failure told to the user in one line; the command exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ApiTarget:
    url: str
    key: str
    # True when found through .local/stack.json: a dead URL then means "the stack is not running".
    local: bool


def find_stack_file(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / STACK_FILE
        if candidate.is_file():
            return candidate
    return None


def read_stack_file(explicit: Path | None) -> dict[str, Any]:
    """The local stack's description; a CliError when there is none."""
    path = explicit or find_stack_file()
    if path is None:
        raise CliError(f"no fluxrelay stack found (no {STACK_FILE} here or above): {START_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{path} not found: the local stack is not running; {START_HINT}") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"{path} cannot be read ({exc}); restart the local stack") from None
    if not isinstance(data, dict):
        raise CliError(f"{path} is not a local stack description; restart the local stack")
    return data


def api_target(api_url: str | None, api_key: str | None, stack_file: Path | None) -> ApiTarget:
    if api_url:
        if not api_key:
            raise CliError("FLUXRELAY_API_URL is set but no key: set FLUXRELAY_API_KEY (or pass --api-key)")
        return ApiTarget(api_url.rstrip("/"), api_key, local=False)
    info = read_stack_file(stack_file)
    url, key = info.get("api_url"), api_key or info.get("api_key")
    if not url or not key:
        raise CliError("the local stack description has no api_url/api_key; restart the local stack")
    return ApiTarget(str(url).rstrip("/"), str(key), local=True)
