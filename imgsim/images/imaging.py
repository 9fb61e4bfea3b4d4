"""Decode any image we accept into an upright 8-bit RGB picture, or say clearly why not.

One function serves the indexer (files in a collection) and the web service (uploaded bytes), so
both accept and refuse exactly the same inputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import math
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageChops

# decode_rgb enforces the configured pixel limit itself, from the header, before decoding; Pillow's
# own check (at a fixed 89 Mpx, on open) would refuse first and quote its limit instead of ours.
Image.MAX_IMAGE_PIXELS = None

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
# The formats accepted, and the suffix a stored upload of each gets (MPO: a JPEG with more frames).
SUFFIX_OF = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}
ACCEPTED_FORMATS = frozenset(SUFFIX_OF)
ONE_CHANNEL_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})
# A decode whose full frame is larger than this waits for any other such decode in the process:
# together with the pixel limit that bounds a process's decoding memory, whatever arrives at once.
LARGE_DECODE_PIXELS = 16_000_000
BAND_PIXELS = 4_000_000  # a frame shrunk while decoding is converted this many pixels at a time
# The most pixels a decode with ``min_side`` hands on. Only frames of extreme shape reach it (a
# 1,000,000 x 64 strip, whose short side allows no shrinking): trimming, previews and query variants
# would otherwise each copy 64 Mpx (four such uploads took a worker to 4 GB).
MAX_DECODED_PIXELS = 4_000_000
_large_decodes = threading.BoundedSemaphore(1)
# What an EXIF orientation asks for (as Pillow's ImageOps.exif_transpose, applied after shrinking).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UnreadableImage(ValueError):
    """The input is not an image we can decode; the message says why, in words for a user."""


class ImageTooLarge(UnreadableImage):
    """The image has more pixels than the configured limit (a decompression-bomb guard)."""


def to_square(image: Image.Image, side: int) -> np.ndarray:
    """An RGB image squashed to a network's square input, as uint8 pixels (H, W, 3)."""
    return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)


RINGING = 4  # pixels: how far JPEG ringing and chroma bleed reach into a frame from the picture


def _spread(image: Image.Image) -> Image.Image:
    """Per pixel, how far it lies from the top-left corner's colour (the largest channel difference).

    In PIL's C loops: the same arithmetic in NumPy took 28 ms on a camera photo decoded to 1000x750,
    twice the decode and six times EfficientNet-Lite0's bf16 forward pass (docs/benchmarks.md 11)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, rgb.getpixel((0, 0))))
    red, green, blue = difference.split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue)


def _content_box(spread: Image.Image, tolerance: int) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels further than ``tolerance`` from the top-left corner's colour."""
    return spread.point([0] * (tolerance + 1) + [255] * (255 - tolerance)).getbbox()


def trim_border(image: Image.Image, tolerance: int = 24, keep: float = 0.2) -> Image.Image:
    """The image without a uniform frame (a screenshot's or a print's border), else the image itself.

    A row or column is frame while every pixel in it lies within ``tolerance`` of the top-left
    corner's colour. Where there is a frame, the lines that JPEG ringing and chroma bleed left
    along its inner edge go too (up to RINGING pixels, within three times the tolerance): such a
    line moved a photo's vector as far as a crop does. Nothing is cut where less than ``keep`` of
    the area would remain (a blank or almost blank picture).
    """
    box = content_box(image, tolerance, keep)
    return image if box == (0, 0, image.width, image.height) else image.crop(box)


def content_box(image: Image.Image, tolerance: int = 24, keep: float = 0.2) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) trim_border keeps: the whole image where it trims nothing."""
    whole = (0, 0, image.width, image.height)
    spread = _spread(image)
    strict = _content_box(spread, tolerance)
    if strict is None or strict == whole:
        return whole
    loose = _content_box(spread, min(254, 3 * tolerance)) or strict
    left, top = min(loose[0], strict[0] + RINGING), min(loose[1], strict[1] + RINGING)
    right, bottom = max(loose[2], strict[2] - RINGING), max(loose[3], strict[3] - RINGING)
    if right <= left or bottom <= top or (right - left) * (bottom - top) < keep * image.width * image.height:
        return whole
    return left, top, right, bottom


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _is_wide(image: Image.Image) -> bool:
    return image.mode in ("I", "F") or image.mode.startswith("I;16")


def _full_scale(image: Image.Image) -> float:
    """The value that maps to 255 in a 16-bit or float image, decided once for the whole image."""
    low, high = image.getextrema()  # one band: (low, high) numbers
    assert isinstance(high, int | float)
    if image.mode == "F":
        return 1.0 if high <= 1.0 else 255.0
    return 65535.0 if high > 255 else 255.0  # 16-bit data unless every value already fits in a byte


def _to_8bit(image: Image.Image, top: float) -> Image.Image:
    """16-bit and float images: scale to 0..255 instead of letting PIL clip them."""
    array = np.asarray(image, dtype=np.float32)
    scaled = np.clip(np.nan_to_num(array) / top * 255.0, 0, 255)
    return Image.fromarray(scaled.round().astype(np.uint8))


def _to_rgb(image: Image.Image, top: float | None = None) -> Image.Image:
    if _is_wide(image):
        image = _to_8bit(image, top if top is not None else _full_scale(image))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def upright_size(path: str | Path) -> tuple[int, int] | None:
    """A file's width and height as it is shown (its EXIF orientation applied), read from its
    header alone; None where it cannot be read."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
    except (OSError, ValueError, SyntaxError):
        return None
    return (height, width) if turned else (width, height)


def pixel_count(data: bytes) -> int:
    """Width x height from the image's header (nothing decoded); 0 where it cannot be read, for
    the decode to refuse with its reason."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size[0] * image.size[1]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0


def image_format(data: bytes) -> str | None:
    """The container format (JPEG, PNG, ...) of image bytes, read from the header only."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except (OSError, ValueError):
        return None


MAX_FILE_BYTES = 256 * 1024 * 1024  # config.max_file_bytes' default


def read_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A collection file's bytes, from one open descriptor: only a regular file (a FIFO would block
    a build forever, a device never end), refused over ``max_bytes`` before anything is read (a
    2 GiB sparse file was once read whole). Raises UnreadableImage with the reason."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without a writer
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except OSError as error:
        raise UnreadableImage(f"cannot read file: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as handle:
        return read_open(handle, max_bytes)


def read_open(handle: BinaryIO, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a file already opened (and checked, where it came from a request): only a
    regular file, refused over ``max_bytes`` before anything is read, or if it grew past them."""
    found = os.fstat(handle.fileno())
    if not stat.S_ISREG(found.st_mode):
        raise UnreadableImage("not a regular file (a pipe, a device or a folder): not read")
    if found.st_size > max_bytes:
        raise UnreadableImage(f"{found.st_size:,} bytes, more than the {max_bytes:,} a file may have")
    try:
        data = handle.read(max_bytes + 1)
    except OSError as error:
        raise UnreadableImage(f"cannot read file: {error.strerror or error}") from None
    if len(data) > max_bytes:  # it grew while being read
        raise UnreadableImage(f"more than the {max_bytes:,} bytes a file may have")
    return data


def open_rgb(
    source: str | Path | bytes,
    max_pixels: int = 64_000_000,
    min_side: int | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> Image.Image:
    """Decode a file path or raw bytes into an upright RGB image.

    Honours EXIF orientation, takes the first frame of animations, converts grayscale, palette,
    CMYK, 16-bit and alpha images (alpha over white), and refuses images over ``max_pixels``
    before decoding them; ``min_side`` as decode_rgb. Raises UnreadableImage with a short reason
    on any failure.
    """
    data = source if isinstance(source, bytes) else read_file(source, max_bytes)
    return decode_rgb(data, max_pixels, min_side)


def decode_rgb(data: bytes, max_pixels: int = 64_000_000, min_side: int | None = None) -> Image.Image:
    """open_rgb for bytes already in memory.

    With ``min_side``, the image comes back shrunk by a whole factor as long as both sides stay at
    least ``min_side`` pixels: JPEGs are decoded at reduced scale, other formats are converted in
    bands, so a large frame is never copied at full size. Frames over LARGE_DECODE_PIXELS are
    decoded one at a time per process, and the memory they took is handed back afterwards.
    """
    if not data:
        raise UnreadableImage("empty file")
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ACCEPTED_FORMATS:
            raise UnreadableImage(f"unsupported image format {image.format}")
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"image has {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
            )
        image.seek(0)
        if min_side and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (min_side, min_side))  # decodes at 1/2, 1/4 or 1/8 scale where it can
        large = image.size[0] * image.size[1] > LARGE_DECODE_PIXELS
        with _large_decodes if large else contextlib.nullcontext():
            try:
                return _decode_frame(image, min_side)
            finally:
                if large:
                    image.close()
                    del image
                    release_memory()
    except UnreadableImage:
        raise
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image (unrecognised file content)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason or isinstance(error, EOFError):
            reason = f"truncated or corrupt image data ({reason})"
        raise UnreadableImage(reason) from None


def _decode_frame(image: Image.Image, min_side: int | None) -> Image.Image:
    """Load the frame, shrink it (in bands, never copying it whole), convert it and turn it upright."""
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    image.load()
    width, height = image.size
    factor = _shrink_factor(width, height, min_side)
    if factor == 1:
        upright = _to_rgb(image)
    else:
        top = _full_scale(image) if _is_wide(image) else None
        upright = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        rows = max(1, BAND_PIXELS // (width * factor)) * factor
        for y in range(0, height, rows):
            band = _to_rgb(image.crop((0, y, width, min(height, y + rows))), top)
            upright.paste(band.reduce(factor), (0, y // factor))
    method = _ORIENTATION.get(orientation or 1)
    return upright.transpose(method) if method is not None else upright


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def release_memory() -> None:
    """Hand freed heap memory back to the system.

    glibc keeps what a large decode freed for later use, so a worker that once decoded four large
    images at the same time stayed gigabytes large; malloc_trim returns it. No-op off glibc.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _shrink_factor(width: int, height: int, min_side: int | None) -> int:
    """The whole factor a frame (as JPEG's reduced scale left it) is shrunk by after loading."""
    factor = max(1, min(width, height) // min_side) if min_side else 1
    if min_side and width * height > MAX_DECODED_PIXELS * factor**2:  # shrink past min_side, then
        factor = math.ceil(math.sqrt(width * height / MAX_DECODED_PIXELS))
    return factor


def decoded_size(data: bytes, min_side: int) -> tuple[int, int]:
    """The width and height of decode_rgb(data, min_side=min_side)'s picture, from the file's
    header alone (a decodable file's)."""
    image = Image.open(io.BytesIO(data))
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", (min_side, min_side))  # sets the reduced scale, decodes nothing
    width, height = image.size
    factor = _shrink_factor(width, height, min_side)
    size = (-(-width // factor), -(-height // factor))
    turned = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)  # a quarter turn or a transpose
    return (size[1], size[0]) if turned else size


def shrunk_as_decoded(picture: Image.Image, data: bytes, min_side: int) -> Image.Image | None:
    """``picture`` (``data`` decoded at a larger ``min_side``) shrunk by the whole factor that gives
    decode_rgb(data, min_side=min_side)'s size, where one divides both its sides; else None
    (decode again). A camera JPEG's decode for the network (1/4 scale) halved stands for its 1/8
    scale decode within a few levels a pixel (2 at most for flowers5 photos enlarged), a decode of
    8.6 ms saved for 0.8 ms (docs/benchmarks.md section 20); smaller pictures are often decoded to
    the same size, and come back as they are."""
    width, height = decoded_size(data, min_side)
    factor = picture.width // width if width else 0
    if factor < 1 or (picture.width, picture.height) != (factor * width, factor * height):
        return None
    return picture if factor == 1 else picture.reduce(factor)
