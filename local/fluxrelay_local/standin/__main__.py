"""`python -m fluxrelay_local.standin` (`make standin`): only the WaveSpeed stand-in, until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from fluxrelay_local.standin.server import StandIn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local WaveSpeed v3 stand-in for fluxrelay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--api-key", default="standin-key")
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--seconds-per-image", type=float, default=1.0)
    parser.add_argument("--queue-seconds", type=float, default=0.2)
    parser.add_argument("--sync-timeout-seconds", type=float, default=90.0)
    parser.add_argument("--public-url", default=None, help="base URL of output links (default: request host)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    standin = StandIn(
        args.host,
        args.port,
        api_key=args.api_key,
        webhook_secret=args.webhook_secret,
        seconds_per_image=args.seconds_per_image,
        queue_seconds=args.queue_seconds,
        sync_timeout_seconds=args.sync_timeout_seconds,
        public_url=args.public_url,
        quiet=args.quiet,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    standin.start()
    print(
        f"WaveSpeed stand-in ready at {standin.url} (api key: {standin.api_key}, "
        f"webhook secret: {standin.webhook_secret}); Ctrl-C to stop",
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
        print("stand-in stopped", flush=True)


if __name__ == "__main__":
    main()
