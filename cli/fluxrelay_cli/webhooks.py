"""`fluxrelay webhooks`: a job's webhook delivery log, and replays of one job's webhook or of
every webhook of a time range (after your receiver's outage).

Filters go to the API as they are typed: the API checks them and its 400 names the bad one.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from fluxrelay_cli.app import JsonOption, Options, app, err, given, out, print_json
from fluxrelay_cli.client import FluxRelayClient
from fluxrelay_cli.target import CliError

webhooks_app = typer.Typer(help="See webhook deliveries and send webhooks again.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

BULK_PATH = "/api/v3/webhooks/redeliver"


def _log_path(job_id: str) -> str:
    return f"/api/v3/predictions/{job_id}/webhooks"


def _answer(attempt: dict[str, Any]) -> str:
    """What the receiver answered: its HTTP status, or why no answer came (or none was sent)."""
    if attempt.get("status_code") is not None:
        return f"HTTP {attempt['status_code']}"
    return str(attempt.get("error") or "-")


def _when(timestamp: str | None) -> str:
    # The API's RFC 3339 UTC times, to the second: "2026-12-01T18:13:33.508166Z" -> "2026-12-01 18:13:33".
    return timestamp[:19].replace("T", " ") if timestamp else "-"


def log_table(log: dict[str, Any]) -> Table:
    table = Table(
        title=f"{log.get('webhook_id') or log['id']} to {log.get('url_host') or '-'}: "
        f"{log['state']}, {log['attempts']} attempt(s)",
        title_justify="left",
    )
    for column in ("#", "at (UTC)", "trigger", "answer", "latency", "outcome", "next retry (UTC)"):
        table.add_column(column, overflow="fold")
    for attempt in log["items"]:
        table.add_row(
            str(attempt["attempt"]),
            _when(attempt["at"]),
            attempt["trigger"],
            _answer(attempt),
            f"{attempt['latency_ms']} ms",
            attempt["outcome"],
            _when(attempt.get("next_retry_at")),
        )
    return table


@webhooks_app.command("log")
def log(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    as_json: JsonOption = False,
) -> None:
    """Show every delivery attempt of a job's webhook, newest first."""
    options: Options = ctx.obj
    delivery_log = options.client().call("GET", _log_path(job_id))
    if as_json:
        print_json(delivery_log)
    elif delivery_log["state"] == "none":
        out.print(f"{job_id} has no webhook")
    else:
        out.print(log_table(delivery_log))


def _filter(help_text: str) -> Any:
    return typer.Option(help=help_text, show_default=False)


@webhooks_app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    job_id: Annotated[
        str | None,
        typer.Argument(help="One job to replay; omit it to replay a time range.", show_default=False),
    ] = None,
    created_after: Annotated[
        str | None, _filter("Jobs created at or after this time (ISO 8601, UTC if no offset).")
    ] = None,
    created_before: Annotated[
        str | None, _filter("Jobs created at or before this time (ISO 8601, UTC if no offset).")
    ] = None,
    status: Annotated[
        str | None, _filter("Only jobs in this status (completed, failed, timeout, cancelled).")
    ] = None,
    batch: Annotated[int | None, _filter("Jobs per API call of a time range, 1 to 20 (default 20).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Send webhooks again: a finished job's, or (no JOB_ID) those of every job the filters match.

    Same webhook-id, fresh signature. A time range is replayed page by page to its end.
    Exits 1 when a receiver did not take a replay.
    """
    options: Options = ctx.obj
    chosen = given(created_after=created_after, created_before=created_before, status=status, limit=batch)
    if job_id is not None and chosen:
        raise CliError(
            "give a job id or a time range (--created-after, --created-before, --status), not both"
        )
    if job_id is None and chosen.keys() <= {"limit"}:
        # Without a filter every job you ever made would be sent again: ask for that explicitly.
        raise CliError("give a job id, or a time range: --created-after, --created-before or --status")
    client = options.client()
    if job_id is not None:
        delivery_log = client.call("POST", f"{_log_path(job_id)}/redeliver")
        replay = delivery_log["items"][0]
        if as_json:
            print_json(delivery_log)
        else:
            out.print(f"{job_id}: {replay['outcome']} ({_answer(replay)}, {replay['latency_ms']} ms)")
        failed = replay["outcome"] != "delivered"
    else:
        report = _redeliver_all(client, chosen)
        if as_json:
            print_json(report)
        else:
            _print_report(report)
        failed = report["failed"] > 0
    if failed:
        raise typer.Exit(1)


def _redeliver_all(client: FluxRelayClient, filters: dict[str, Any]) -> dict[str, Any]:
    """Every page of the bulk replay, one call after the other, summed up."""
    totals: dict[str, Any] = {"matched": 0, "redelivered": 0, "failed": 0, "skipped": 0, "items": []}
    cursor: str | None = None
    while True:
        page = client.call("POST", BULK_PATH, json={**filters, **({"cursor": cursor} if cursor else {})})
        for name in ("matched", "redelivered", "failed", "skipped"):
            totals[name] += page[name]
        totals["items"] += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return totals
        err.print(f"{totals['matched']} job(s) so far, going on…")


def _print_report(report: dict[str, Any]) -> None:
    if report["items"]:
        table = Table()
        table.add_column("job", no_wrap=True)
        table.add_column("outcome")
        table.add_column("answer", overflow="fold")
        for item in report["items"]:
            table.add_row(item["id"], item["outcome"], _answer(item))
        out.print(table)
    out.print(
        f"{report['matched']} matched: {report['redelivered']} redelivered, "
        f"{report['failed']} failed, {report['skipped']} skipped"
    )
