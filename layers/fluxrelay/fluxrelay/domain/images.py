"""Recognising image bytes before we store (or pay for) them.

Only the header is needed to learn format and size, so outputs can be checked from their
first chunk and then streamed on to S3 without holding the whole file in memory. Pillow is
imported when an image is first looked at: the functions that never look at one never load it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from fluxrelay.domain.errors import InvalidRequestError

# Pillow format name -> (our format name, content type, extension)
FORMATS: dict[str, tuple[str, str, str]] = {
    "JPEG": ("jpeg", "image/jpeg", "jpeg"),
    "PNG": ("png", "image/png", "png"),
    "WEBP": ("webp", "image/webp", "webp"),
}
CONTENT_TYPES = {fmt: ctype for fmt, ctype, _ in FORMATS.values()}
EXTENSIONS = {fmt: ext for fmt, _, ext in FORMATS.values()}
# Enough for every header Pillow needs for JPEG/PNG/WebP, EXIF included in practice.
HEAD_BYTES = 256 * 1024


class NotAnImageError(InvalidRequestError):
    """The bytes are not a JPEG, PNG or WebP image we can decode."""


class TooManyPixelsError(InvalidRequestError):
    """The image is larger than Pillow's decompression-bomb limit."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # jpeg | png | webp
    content_type: str
    width: int
    height: int


def sniff(head: bytes, *, full: bool = False) -> ImageInfo:
    """Identify an image from its first bytes (or, with `full`, decode it completely).
    Raises NotAnImageError, or TooManyPixelsError for a decompression bomb."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(head)) as img:
            if full:
                img.load()
            fmt = FORMATS.get(img.format or "")
            if fmt is None:
                raise NotAnImageError(f"unsupported image format {img.format}; use JPEG, PNG or WebP")
            return ImageInfo(format=fmt[0], content_type=fmt[1], width=img.width, height=img.height)
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError("the image has too many pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAnImageError("the file is not a decodable JPEG, PNG or WebP image") from exc


# An obscured image keeps at most this many cells along its longer side: everything finer is gone
# from the stored file, so no deblurring can bring it back (a blur alone can be partly undone).
_OBSCURED_CELLS = 12
_PILLOW_NAMES = {fmt: pillow for pillow, (fmt, _, _) in FORMATS.items()}


def obscure(data: bytes, fmt: str) -> bytes:
    """The image shrunk to a few cells, scaled back to its size and blurred, in the same format
    (`jpeg`, `png` or `webp`) and with no metadata."""
    from PIL import Image, ImageFilter

    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    width, height = rgb.size
    scale = _OBSCURED_CELLS / max(width, height)
    cells = rgb.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    smooth = cells.resize((width, height), Image.Resampling.BILINEAR)
    blurred = smooth.filter(ImageFilter.GaussianBlur(radius=max(width, height) / (_OBSCURED_CELLS * 2)))
    out = io.BytesIO()
    blurred.save(out, format=_PILLOW_NAMES[fmt])
    return out.getvalue()
