"""`python -m fluxrelay_local` (`make run`): the whole application on this machine until stopped.

Environment: API_PORT (3000), UPSTREAM_PORT (3001), AWS_PORT (4566); WAVESPEED_API_KEY (a real
key: use the real WaveSpeed API instead of the stand-in); FLUXRELAY_URL_POLICY=strict.
The data is kept in .local/state across restarts (`make reset` wipes it).

SIGTERM and SIGINT (Ctrl-C) stop it cleanly at any moment, start-up included: the first one
unwinds whatever is running into `LocalStack.stop()`; a second one while stopping exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from fluxrelay_local.stack import LocalStack, LocalStackError, StackConfig

LOG = logging.getLogger("fluxrelay_local")


class Stopped(BaseException):
    """Raised in the main thread by the first SIGTERM/SIGINT (a BaseException, like
    KeyboardInterrupt, so no `except Exception` on the way swallows it)."""


def _usage_lines(stack: LocalStack) -> list[str]:
    api, key = stack.api_url, stack.api_key
    upstream = (
        f"{stack.upstream_url} (the REAL WaveSpeed API: jobs are billed)"
        if stack.config.wavespeed_api_key
        else f"{stack.upstream_url} (WaveSpeed stand-in)"
    )
    return [
        "fluxrelay local stack ready",
        f"  API         {api}",
        f"  playground  {api}/playground   (paste the dev key)",
        f"  API docs    {api}/swagger   (OpenAPI {api}/openapi.json)",
        f"  dev key     {key}",
        f"  AWS         {stack.aws_endpoint_url}   upstream {upstream}",
        f"  data        {stack.config.state_dir}/state, kept across restarts (make reset wipes it)",
        "",
        "Try it (another terminal; the command finds this stack through .local/stack.json):",
        '  .venv/bin/fluxrelay generate "a lighthouse at dusk, watercolor" --out .',
        "  .venv/bin/fluxrelay receiver --port 8000     # verifies and prints signed webhooks",
        "  .venv/bin/fluxrelay keys create --owner alice",
        "Or with curl:",
        f"  curl -s -X POST {api}/api/v3/wavespeed-ai/flux-schnell-lora \\",
        f'    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\',
        '    -d \'{"prompt": "a lighthouse at dusk, watercolor"}\'',
        "",
        f"Ctrl-C stops everything and saves the data; {stack.state_file} describes the running stack.",
    ]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # moto and werkzeug log every internal request (each poll of each workflow): keep them quiet.
    for noisy in ("werkzeug", "botocore", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            # Second signal while stopping: the user wants out now (nothing is saved).
            os._exit(128 + signum)
        stopping.set()
        raise Stopped

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        stack = LocalStack(StackConfig.from_env())
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        stack.start()
        print("\n".join(_usage_lines(stack)), flush=True)
        threading.Event().wait()  # until a signal raises Stopped
    except Stopped:
        pass
    except LocalStackError as exc:
        # A known start-up problem (a port in use, ...): one line, no traceback.
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:
        LOG.exception("the local stack failed to start: %s", exc)
        return 1
    finally:
        stopping.set()
        if stack.api is not None:
            print("stopping the local stack (saving its data)...", file=sys.stderr, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
