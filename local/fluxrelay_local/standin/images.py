"""The stand-in's outputs: real, deterministic images of the requested size and format."""

from __future__ import annotations

import functools
import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageOps

# output_format → (Pillow format, media type)
FORMATS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}


def image_size(size: str, multiple: int) -> tuple[int, int]:
    """The pixel size of a `W*H` request, each side floored to `multiple` (1 = exact)."""
    width, height = (int(side) for side in size.split("*"))
    return width - width % multiple, height - height % multiple


@functools.lru_cache(maxsize=64)
def render_image(prompt: str, seed: int, index: int, width: int, height: int, output_format: str) -> bytes:
    """A real, deterministic image: a two-colour gradient plus shapes, all drawn from a hash of
    (seed, prompt, index), so different prompts or seeds give visibly different pictures."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    gradient = Image.linear_gradient("L").transpose(rng.choice(list(Image.Transpose)[:4]))
    gradient = Image.blend(gradient, Image.radial_gradient("L"), rng.uniform(0.0, 0.6))
    image = ImageOps.colorize(gradient.resize((width, height), Image.Resampling.BILINEAR), colour(), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(4, 9)):
        x0, x1 = sorted(rng.randrange(width) for _ in range(2))
        y0, y1 = sorted(rng.randrange(height) for _ in range(2))
        kind = rng.choice(("ellipse", "rectangle", "polygon"))
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour(), outline=colour(), width=max(1, width // 200))
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        else:
            points = [(rng.randrange(width), rng.randrange(height)) for _ in range(3)]
            draw.polygon(points, fill=colour())
    draw.text((8, 8), f"stand-in seed={seed} #{index}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    pil_format = FORMATS[output_format][0]
    options = {"quality": 85} if pil_format in {"JPEG", "WEBP"} else {}
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()
