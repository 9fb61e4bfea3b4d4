"""Whether two files of one size show the same picture, pixel for pixel, but where one carries
something laid over it (a tiled watermark, a sticker, a line of text).

On a soft photo, the text of a watermark is all the detail there is: the keypoints of a
watermarked copy lie on its letters, so its match with its picture fails (2 of flowers5's 20
planted ones) or lies on the text alone and does not agree beyond it (1 of 20). But an overlay
leaves the rest of the picture as it was. So the two grays are compared place by place: where both
have detail (a 5 x 5 patch's standard deviation of DETAIL), the share whose gray levels lie within
SAME_LEVEL of each other. Measured on flowers5 (a throwaway script over the hard copies set of
bench/hard_copies.py): the 20 watermarked copies at 0.87-0.91; two different photos under the one
watermark at 0.24 at most; each of 600 photos against its nearest by perceptual hash, other than
its copies, at 0.23 at most (one at 0.63 was the source's own copy of one photograph, reviewed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SAME_LEVEL = 8  # of 256 gray levels: a pixel the overlay left alone (re-encoding moves a few)
DETAIL = 6.0  # a pixel counts where both pictures' 5 x 5 patch around it has this standard deviation:
# flat sky or a catalogue's white background agrees whatever the photos are
MIN_SAME = 0.8  # of the pixels with detail, at the same level: the same picture under an overlay
MIN_DETAIL_SHARE = 0.1  # of the pixels, with detail: fewer say nothing (watermarked flowers: 0.16-0.86)
NOTHING_LAID = 0.01  # of all pixels, changed: fewer, and nothing was laid over (a re-encoded copy)
LAID_EDGES = 3.0  # times the other's edges where they differ, on the side that carries an overlay:
# watermarked copies 11-68 times their pictures'; hue-shifted and saturated copies 0.6-1.5 (changed
# tones, nothing laid over)


@dataclass(frozen=True)
class SamePixels:
    """Two pictures the same pixel for pixel: the share of their detailed pixels at the same
    level, and which carries an overlay (0: the first, 1: the second, None: neither)."""

    share: float
    carrier: int | None


def _patch_spread(gray: np.ndarray) -> np.ndarray:
    import cv2

    mean, square = cv2.blur(gray, (5, 5)), cv2.blur(gray * gray, (5, 5))
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


def _edges(gray: np.ndarray) -> np.ndarray:
    import cv2

    return np.abs(cv2.Laplacian(gray, cv2.CV_32F))


def same_pixels(a: Image.Image, b: Image.Image) -> SamePixels | None:
    """Whether gray pictures ``a`` and ``b`` of one size are the same, but perhaps for something
    laid over one of them (SamePixels), else None. The carrier is the one with LAID_EDGES times
    the other's edges where they differ: an overlay's letters or outline."""
    if a.size != b.size:
        return None
    first, second = np.asarray(a, np.float32), np.asarray(b, np.float32)
    detailed = (_patch_spread(first) >= DETAIL) & (_patch_spread(second) >= DETAIL)
    if detailed.mean() < MIN_DETAIL_SHARE:
        return None
    same = np.abs(first - second) <= SAME_LEVEL
    share = float(same[detailed].mean())
    if share < MIN_SAME:
        return None
    changed = ~same
    if changed.mean() < NOTHING_LAID:
        return SamePixels(round(share, 3), None)
    edges = float(_edges(first)[changed].mean()), float(_edges(second)[changed].mean())
    carrier = next((side for side in (0, 1) if edges[side] >= LAID_EDGES * edges[1 - side]), None)
    return SamePixels(round(share, 3), carrier)
