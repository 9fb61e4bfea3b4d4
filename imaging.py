"""Decode any image we accept into an upright 8-bit RGB picture, or say clearly why not.

One function serves the indexer (files in a collection) and the web service (uploaded bytes), so
both accept and refuse exactly the same inputs.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# decode_rgb enforces the configured pixel limit itself, from the header, before decoding; Pillow's
# own check (at a fixed 89 Mpx, on open) would refuse first and quote its limit instead of ours.
Image.MAX_IMAGE_PIXELS = None

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO"})


class UnreadableImage(ValueError):
    """The input is not an image we can decode; the message says why, in words for a user."""


class ImageTooLarge(UnreadableImage):
    """The image has more pixels than the configured limit (a decompression-bomb guard)."""


def to_square(image: Image.Image, side: int) -> np.ndarray:
    """An RGB image squashed to a network's square input, as uint8 pixels (H, W, 3)."""
    return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float images: scale to 0..255 instead of letting PIL clip them."""
    array = np.asarray(image)
    if image.mode == "F":
        top = 1.0 if array.size and float(np.nanmax(array)) <= 1.0 else 255.0
        scaled = np.clip(np.nan_to_num(array) / top * 255.0, 0, 255)
    else:  # "I" or "I;16*": 16-bit data unless every value already fits in a byte
        top = 65535.0 if array.size and int(array.max()) > 255 else 255.0
        scaled = np.clip(array.astype(np.float64) / top * 255.0, 0, 255)
    return Image.fromarray(scaled.round().astype(np.uint8))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def image_format(data: bytes) -> str | None:
    """The container format (JPEG, PNG, ...) of image bytes, read from the header only."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except (OSError, ValueError):
        return None


def open_rgb(source: str | Path | bytes, max_pixels: int = 64_000_000) -> Image.Image:
    """Decode a file path or raw bytes into an upright RGB image.

    Honours EXIF orientation, takes the first frame of animations, converts grayscale, palette,
    CMYK, 16-bit and alpha images (alpha over white), and refuses images over ``max_pixels``
    before decoding them. Raises UnreadableImage with a short reason on any failure.
    """
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except OSError as error:
        raise UnreadableImage(f"cannot read file: {error.strerror or error}") from None
    return decode_rgb(data, max_pixels)


def decode_rgb(data: bytes, max_pixels: int = 64_000_000) -> Image.Image:
    """open_rgb for bytes already in memory."""
    if not data:
        raise UnreadableImage("empty file")
    stream = io.BytesIO(data)
    try:
        image = Image.open(stream)
        if image.format not in ACCEPTED_FORMATS:
            raise UnreadableImage(f"unsupported image format {image.format}")
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"image has {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
            )
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except UnreadableImage:
        raise
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image (unrecognised file content)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason or isinstance(error, EOFError):
            reason = f"truncated or corrupt image data ({reason})"
        raise UnreadableImage(reason) from None
