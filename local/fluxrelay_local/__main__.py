"""`python -m fluxrelay_local`: run the whole application on this machine until Ctrl-C.

Environment: API_PORT (3000), UPSTREAM_PORT (3001), AWS_PORT (4566); WAVESPEED_API_KEY (a real
key: use the real WaveSpeed API instead of the stand-in); FLUXRELAY_URL_POLICY=strict.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from fluxrelay_local.stack import LocalStack, StackConfig


def _usage_lines(stack: LocalStack) -> list[str]:
    api, key = stack.api_url, stack.api_key
    upstream = (
        f"upstream {stack.upstream_url} (REAL WaveSpeed API: jobs are billed)"
        if stack.config.wavespeed_api_key
        else f"upstream {stack.upstream_url}"
    )
    return [
        f"fluxrelay local stack ready: API {api}  key {key}  (AWS {stack.aws_endpoint_url}, {upstream})",
        f"Playground: {api}/playground (paste the key above)",
        "",
        "Submit a prompt:",
        f"  curl -s -X POST {api}/api/v3/wavespeed-ai/flux-schnell-lora \\",
        f'    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\',
        '    -d \'{"prompt": "a lighthouse at dusk, watercolor"}\'',
        "Then fetch the result with the returned data.id:",
        f'  curl -s {api}/api/v3/predictions/<id>/result -H "Authorization: Bearer {key}"',
        "",
        f"State: {stack.state_file}   More keys: fluxrelay keys create --owner NAME",
        "Ctrl-C stops everything.",
    ]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # moto and werkzeug log every internal request (each poll of each workflow): keep them quiet.
    for noisy in ("werkzeug", "botocore", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    stack = LocalStack(StackConfig.from_env())
    try:
        stack.start()
        signal.signal(signal.SIGINT, _on_signal)
        print("\n".join(_usage_lines(stack)), flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl-C during start-up; start() already stopped what it had started
    except Exception as exc:
        logging.getLogger("fluxrelay_local").exception("the local stack failed to start: %s", exc)
        stack.stop()
        return 1
    finally:
        if stack.api is not None or stop.is_set():
            print("stopping the local stack...", file=sys.stderr, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
