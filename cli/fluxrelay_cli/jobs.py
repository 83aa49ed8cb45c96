"""`fluxrelay jobs`: list your jobs, look at one, follow it to its end, cancel it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fluxrelay_cli.app import JsonOption, Options, app, err, given, out, print_json
from fluxrelay_cli.generate import finish
from fluxrelay_cli.progress import follow, offer_cancel

jobs_app = typer.Typer(help="List jobs, look at one, follow it, cancel it.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

JobId = Annotated[str, typer.Argument(help="The job id (data.id of the submit answer).")]


def _images(prediction: dict[str, Any]) -> str:
    count = len(prediction.get("outputs") or [])
    flagged = sum(1 for flag in prediction.get("has_nsfw_contents") or [] if flag)
    return f"{count} ({flagged} nsfw)" if flagged else str(count)


def _when(created_at: str | None) -> str:
    # "2026-12-01T17:59:23.416406Z" -> "2026-12-01 17:59:23": the table fits 80 columns.
    return (created_at or "")[:19].replace("T", " ")


def jobs_table(predictions: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    # The id stays on one line (it is copied into other commands); on a narrow terminal the other
    # columns wrap, so the error keeps some room rather than being squeezed out.
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", min_width=10)
    table.add_column("images", min_width=1)
    table.add_column("error", overflow="fold", min_width=12)
    for p in predictions:
        table.add_row(
            p.get("id"), p.get("status"), _when(p.get("created_at")), _images(p), p.get("error") or ""
        )
    return table


def prediction_table(prediction: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("id", prediction.get("id")),
        ("status", prediction.get("status")),
        ("created", prediction.get("created_at")),
        ("inference", f"{(prediction.get('timings') or {}).get('inference', 0)} ms"),
        ("error", prediction.get("error") or "-"),
    ]
    nsfw = prediction.get("has_nsfw_contents") or []
    for index, url in enumerate(prediction.get("outputs") or []):
        flag = "  (nsfw)" if index < len(nsfw) and nsfw[index] else ""
        rows.append((f"output {index}", f"{url}{flag}"))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@jobs_app.command("show")
def show(ctx: typer.Context, job_id: JobId, as_json: JsonOption = False) -> None:
    """Show a job: status, timings, error, output URLs."""
    options: Options = ctx.obj
    prediction = options.client().prediction(job_id)
    if as_json:
        print_json(prediction)
    else:
        out.print(prediction_table(prediction))


@jobs_app.command("watch")
def watch(
    ctx: typer.Context,
    job_id: JobId,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Save the images here (default: print their URLs).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live until it ends; exits non-zero unless it completed."""
    options: Options = ctx.obj
    client = options.client()
    prediction = client.prediction(job_id)
    try:
        prediction = follow(client, prediction, err)
    except KeyboardInterrupt:
        offer_cancel(client, job_id, err)
        raise typer.Exit(130) from None
    finish(client, prediction, out_dir, as_json)


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only jobs in this status: created, processing, completed, failed, timeout, cancelled."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many jobs per page, 1..100 (default 20).")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option(help="Go on from an earlier page (its next cursor; give the same filters).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every matching job: follow the pages to the end.")
    ] = False,
    created_after: Annotated[
        str | None,
        typer.Option(help="Only jobs created at or after this ISO 8601 date or time (UTC if no offset)."),
    ] = None,
    created_before: Annotated[
        str | None, typer.Option(help="Only jobs created at or before this ISO 8601 date or time.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List your jobs, newest first (one page, or every page with --all).

    The filters are checked by the API: a bad one is its 400 message.
    """
    options: Options = ctx.obj
    client = options.client()
    query = given(status=status, limit=limit, created_after=created_after, created_before=created_before)
    items: list[dict[str, Any]] = []
    while True:
        page = client.predictions({**query, "cursor": cursor} if cursor else query)
        items.extend(page.get("items") or [])
        cursor = page.get("next_cursor")
        if not (every and cursor):
            break
    if as_json:
        print_json({"items": items, "next_cursor": cursor})
    elif items:
        out.print(jobs_table(items))
    else:
        err.print("no jobs on this page" if cursor else "no jobs")
    if cursor and not as_json:
        err.print(f"more: the same command with --cursor {cursor} (or --all)")


@jobs_app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobId, as_json: JsonOption = False) -> None:
    """Cancel an unfinished job and print its new status; a finished job is an error."""
    options: Options = ctx.obj
    prediction = options.client().cancel(job_id)
    if as_json:
        print_json(prediction)
        return
    note = f"  ({prediction['error']})" if prediction.get("error") else ""
    out.print(f"{prediction.get('id', job_id)}  {prediction.get('status')}{note}")
