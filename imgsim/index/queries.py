"""Queries beyond one whole image: a region of it, several images at once, images to avoid.

- A region (``box=x,y,w,h`` as fractions of the width and height) is cut out of the query image
  before it is embedded: "find this lamp, not the room".
- Several images and indexed ids combine into one query: the mean of their unit vectors, in the
  index's space (as rclip and Qdrant do). Negative ones are subtracted at half weight, which
  pushes results away from them without letting them dominate the query.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image

from imgsim.index.vectors import normalise

Box = tuple[float, float, float, float]
MIN_REGION_SIDE = 8  # pixels: a smaller region is not a picture of anything
NEGATIVE_WEIGHT = 0.5


class BadBox(ValueError):
    """A box that is not four fractions inside the image; the message says what is wrong."""


_ASCII_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_box(raw: str) -> Box:
    """``x,y,w,h`` as fractions of the image's width and height (0..1, the box inside the image)."""
    parts = raw.split(",")
    try:
        if not all(_ASCII_NUMBER.fullmatch(part.strip()) for part in parts):
            raise ValueError  # float() reads other scripts' digits and "inf", "nan", "1_0": not ours
        x, y, w, h = (float(part) for part in parts)
    except ValueError:
        raise BadBox(
            f"box must be four numbers x,y,w,h (fractions of the width and height), got {raw!r}"
        ) from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise BadBox(f"box must be finite numbers, got {raw!r}")
    if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1):
        raise BadBox(f"box x and y must be in [0, 1), w and h in (0, 1], got {raw!r}")
    if x + w > 1 + 1e-6 or y + h > 1 + 1e-6:
        raise BadBox(f"box must lie inside the image (x + w <= 1, y + h <= 1), got {raw!r}")
    return x, y, w, h


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The region ``box`` of ``image``; BadBox if it is smaller than MIN_REGION_SIDE pixels."""
    x, y, w, h = box
    left, top = round(x * image.width), round(y * image.height)
    right, bottom = (
        min(image.width, round((x + w) * image.width)),
        min(image.height, round((y + h) * image.height)),
    )
    if right - left < MIN_REGION_SIDE or bottom - top < MIN_REGION_SIDE:
        raise BadBox(
            f"the box is {right - left}x{bottom - top} pixels of this {image.width}x{image.height} image: "
            f"make it at least {MIN_REGION_SIDE} pixels on each side"
        )
    return image.crop((left, top, right, bottom))


def combine(positives: np.ndarray, negatives: np.ndarray | None = None) -> np.ndarray:
    """One query vector from several (rows, in the index's space): the mean of the positives' unit
    vectors, minus NEGATIVE_WEIGHT times the mean of the negatives' unit vectors."""
    query = normalise(positives).mean(axis=0)
    if negatives is not None and len(negatives):
        query = query - NEGATIVE_WEIGHT * normalise(negatives).mean(axis=0)
    return query.astype(np.float32)
