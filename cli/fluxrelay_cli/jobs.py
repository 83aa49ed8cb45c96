"""`fluxrelay jobs`: look at a job, or follow it to its end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fluxrelay_cli.app import JsonOption, Options, app, err, out, print_json
from fluxrelay_cli.generate import finish
from fluxrelay_cli.progress import follow, offer_cancel

jobs_app = typer.Typer(help="Look at jobs and follow them.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

JobId = Annotated[str, typer.Argument(help="The job id (data.id of the submit answer).")]


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
