"""Edited copies of a photo, made in memory: what people search with instead of the original.

A screenshot with a border, a cropped or re-saved copy, a black-and-white print, a phone photo
turned sideways. The build uses the strong ones to tune Annoy's search depth (see recall.py),
evaluate.py and the benchmark to measure whether the original still comes back first. Nothing
here is ever written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageOps

Edit = Callable[[Image.Image], Image.Image]


def reencode(quality: int) -> Edit:
    def edit(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    return edit


def resize(factor: float) -> Edit:
    def edit(image: Image.Image) -> Image.Image:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.Resampling.LANCZOS)

    return edit


def brightness(factor: float) -> Edit:
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


def rotate(transpose: Image.Transpose) -> Edit:
    return lambda image: image.transpose(transpose)


def border(fraction: float, colour: tuple[int, int, int] = (255, 255, 255)) -> Edit:
    """A frame ``fraction`` of the width (and height) wide on every side, as a screenshot has."""

    def edit(image: Image.Image) -> Image.Image:
        dx, dy = round(image.width * fraction), round(image.height * fraction)
        framed = Image.new("RGB", (image.width + 2 * dx, image.height + 2 * dy), colour)
        framed.paste(image, (dx, dy))
        return framed

    return edit


def centre_crop(fraction: float) -> Edit:
    """The middle ``fraction`` of the width and of the height."""

    def edit(image: Image.Image) -> Image.Image:
        width, height = round(image.width * fraction), round(image.height * fraction)
        left, top = (image.width - width) // 2, (image.height - height) // 2
        return image.crop((left, top, left + width, top + height))

    return edit


def desaturate(amount: float) -> Edit:
    """``amount`` 1 is black and white; 0.5 keeps half the colour."""
    if amount >= 1:
        return lambda image: ImageOps.grayscale(image).convert("RGB")
    return lambda image: ImageEnhance.Color(image).enhance(1 - amount)


# Every kind at two strengths, the first of each pair the one a user is most likely to send.
EDITS: dict[str, Edit] = {
    "reencode_q30": reencode(30),
    "reencode_q10": reencode(10),
    "resize_50": resize(0.5),
    "resize_25": resize(0.25),
    "flip": ImageOps.mirror,
    "flip_vertical": ImageOps.flip,
    "brighter_40": brightness(1.4),
    "darker_40": brightness(0.6),
    "rotate_90": rotate(Image.Transpose.ROTATE_90),
    "rotate_180": rotate(Image.Transpose.ROTATE_180),
    "border_10": border(0.10),
    "border_20": border(0.20),
    "crop_85": centre_crop(0.85),
    "crop_70": centre_crop(0.70),
    "grayscale_50": desaturate(0.5),
    "grayscale": desaturate(1.0),
}

# The strong edits that a build searches with to choose Annoy's search_k: they move a vector the
# furthest from its original, where a shallow search misses the true neighbours first.
CALIBRATION = ("reencode_q30", "rotate_90", "border_20", "crop_70", "grayscale")


def apply(name: str, image: Image.Image) -> Image.Image:
    """The edited copy ``name`` of an RGB image."""
    return EDITS[name](image)
