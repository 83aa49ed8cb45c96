"""`fluxrelay receiver`: a local webhook endpoint that verifies each delivery and prints it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Any

import typer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fluxrelay_cli.app import JsonOption, Options, app, err, out, print_json
from fluxrelay_cli.target import CliError
from fluxrelay_local.receiver import Delivery, WebhookReceiver


def describe(delivery: Delivery, verifier: Webhook) -> tuple[int, dict[str, Any]]:
    """(the HTTP status to answer, what to print) for one delivery."""
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    seen: dict[str, Any] = {
        "received_at": time.strftime("%H:%M:%S", time.localtime(delivery.received_at)),
        "webhook_id": headers.get("webhook-id", ""),
    }
    try:
        payload = verifier.verify(delivery.body, headers)
    except WebhookVerificationError as exc:
        # 401 tells the sender the delivery was refused (fluxrelay then retries it).
        return 401, {**seen, "verified": False, "error": str(exc)}
    except ValueError:
        return 400, {**seen, "verified": False, "error": "the body is not JSON"}
    if not isinstance(payload, dict):
        return 400, {**seen, "verified": True, "error": "the body is not a prediction object"}
    return 200, {**seen, "verified": True, "payload": payload}


def line(seen: dict[str, Any]) -> str:
    if not seen["verified"] or "error" in seen:
        return f"{seen['received_at']}  REJECTED  {seen['error']}  ({seen['webhook_id'] or 'no webhook-id'})"
    payload = seen["payload"]
    outputs = len(payload.get("outputs") or [])
    error = f"  error: {payload['error']}" if payload.get("error") else ""
    return (
        f"{seen['received_at']}  verified  {payload.get('id')}  {payload.get('status')}  "
        f"{outputs} output(s){error}  ({seen['webhook_id']})"
    )


@app.command()
def receiver(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="FLUXRELAY_WEBHOOK_SECRET",
            help="The whsec_... signing secret (default: fetched from the stack with your key).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Receive webhooks: verify each Standard Webhooks signature and print the delivery.

    Forged or stale deliveries are answered 401 and shown as REJECTED. Ctrl-C stops it.
    """
    options: Options = ctx.obj
    if not secret:
        secret = options.client().webhook_secret()
    if not secret.startswith("whsec_") or len(secret) <= len("whsec_"):
        raise CliError("--secret must be a whsec_... secret (GET /api/v3/webhook/secret)")
    verifier = Webhook(secret)
    printing = threading.Lock()

    def respond(delivery: Delivery) -> int:
        status, seen = describe(delivery, verifier)
        with printing:
            print_json(seen, indent=None) if as_json else out.print(line(seen), soft_wrap=True)
        return status

    # The HTTP server's own access log would repeat each delivery, less usefully.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        hooks = WebhookReceiver(host=host, port=port, respond=respond)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port} ({exc.strerror}): pass another --port") from None
    with hooks:
        url = f"http://{host}:{hooks.port}/hook"
        err.print(f"listening on {url}  (Ctrl-C stops)")
        err.print(f'try it: fluxrelay generate "a lighthouse" --webhook {url}')
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            err.print("receiver stopped")
