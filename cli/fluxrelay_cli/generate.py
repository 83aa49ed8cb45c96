"""`fluxrelay generate`: upload local images, submit, follow the job live, save its images."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from fluxrelay_cli.app import JsonOption, Options, app, err, out, print_json
from fluxrelay_cli.client import FluxRelayClient
from fluxrelay_cli.progress import follow, offer_cancel
from fluxrelay_cli.target import CliError


class OutputFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"
    webp = "webp"


def parse_lora(value: str) -> dict[str, Any]:
    """`owner/repo[:scale]` (or an https://….safetensors URL with an optional `:scale`); scale 1.0."""
    path, sep, scale = value.rpartition(":")
    if sep and path and not scale.startswith("//"):
        try:
            return {"path": path, "scale": float(scale)}
        except ValueError:
            pass
    if not value:
        raise CliError("--lora must be owner/repo[:scale], e.g. alvdansen/frosting_lane_flux:0.8")
    return {"path": value, "scale": 1.0}


def image_source(client: FluxRelayClient, value: str, option: str) -> str:
    """A URL as it is; a local file is uploaded first and its download URL used."""
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise CliError(f"{option}: no such file: {value} (give a local image or an https:// URL)")
    err.print(f"uploading {path} ...")
    return client.upload(path)


def request_body(client: FluxRelayClient, prompt: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt}
    if options["lora"]:
        body["loras"] = [parse_lora(v) for v in options["lora"]]
    if options["size"]:
        body["size"] = options["size"].lower().replace("x", "*")
    for name, field in (("num_images", "num_images"), ("seed", "seed"), ("strength", "strength")):
        if options[name] is not None:
            body[field] = options[name]
    if options["output_format"] is not None:
        body["output_format"] = options["output_format"].value
    if options["image"]:
        body["image"] = image_source(client, options["image"], "--image")
    if options["mask"]:
        if not options["image"]:
            raise CliError("--mask needs --image (the mask says which part of the image to repaint)")
        body["mask_image"] = image_source(client, options["mask"], "--mask")
    return body


@app.command()
def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    lora: Annotated[
        list[str] | None,
        typer.Option("--lora", help="A LoRA as owner/repo[:scale] (scale 0..4, default 1); up to 3."),
    ] = None,
    size: Annotated[str | None, typer.Option(help="W*H (or WxH), each side 256..1536.")] = None,
    num_images: Annotated[int | None, typer.Option("--num-images", "-n", help="1..4 images.")] = None,
    seed: Annotated[int | None, typer.Option(help="-1 (random) or 0..2147483647.")] = None,
    output_format: Annotated[
        OutputFormat | None, typer.Option("--format", help="Image format (default jpeg).")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="img2img source: a local file (uploaded first) or a URL.")
    ] = None,
    mask: Annotated[
        str | None, typer.Option(help="Inpainting mask (white = repaint): a local file or a URL.")
    ] = None,
    strength: Annotated[float | None, typer.Option(help="img2img strength 0..1 (default 0.8).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Also deliver the signed webhook to this URL.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the images.")] = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Generate images: submit, follow the job live, save the images and print their paths.

    Ctrl-C while waiting offers to cancel the job or leave it running.
    """
    options: Options = ctx.obj
    client = options.client()
    body = request_body(
        client,
        prompt,
        lora=lora,
        size=size,
        num_images=num_images,
        seed=seed,
        output_format=output_format,
        image=image,
        mask=mask,
        strength=strength,
    )
    prediction = client.submit(body, webhook=webhook)
    try:
        prediction = follow(client, prediction, err)
    except KeyboardInterrupt:
        offer_cancel(client, prediction["id"], err)
        raise typer.Exit(130) from None
    finish(client, prediction, out_dir, as_json)


def finish(client: FluxRelayClient, prediction: dict[str, Any], out_dir: Path | None, as_json: bool) -> None:
    """Save (or list) a terminal job's images; a job that did not complete is a CliError."""
    completed = prediction.get("status") == "completed"
    files = client.save_outputs(prediction, out_dir) if completed and out_dir is not None else []
    if as_json:
        print_json({"prediction": prediction, "files": [str(f) for f in files]})
    elif completed:
        for line in files or prediction.get("outputs") or []:
            out.print(str(line), soft_wrap=True)
    if not completed:
        reason = prediction.get("error") or "no reason given"
        raise CliError(f"job {prediction['id']} {prediction.get('status')}: {reason}")
