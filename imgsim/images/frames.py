"""Whether a picture held wholly inside another file is framed there (a border, a caption bar, an
app's window) or is a crop of a larger photo: the match cannot tell, as both look the same to it.

Along each side of the held picture's outline that has pixels outside it, the strip just outside
is compared with the strip just inside: a frame is flat along the side (a border's colour, a bar's
white, a window's gray) where the picture is not, and meets it with a step; the rest of a photo
goes on as the picture does. Measured on flowers5's harder copies (docs/matching.md): the sides of
captioned copies and screenshots in a viewer's window varied by at most 1.3 gray levels along the
strip outside (one screenshot side running along the toolbar: 24.7), the sides around half crops and
the collection's own crops by 2.4 and more, as much as inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

FLAT = 1.5  # gray levels the strip outside may vary along a side and still be a frame's
STEP = 8.0  # gray levels a frame meets the picture with, where the picture's own edge is flat too
DETAILED = 4.0  # gray levels the strip inside varies where a flat strip outside is a frame's
NEAR = (2, 3, 4)  # pixels from the outline the strips lie at (JPEG ringing stays within about 2)
SAMPLES = 40  # places along each side, its ends (the corners) left out


def _along(gray: np.ndarray, points: np.ndarray, normal: np.ndarray, distance: float) -> np.ndarray:
    """The gray levels at ``points`` moved ``distance`` pixels along ``normal`` (nearest pixel)."""
    height, width = gray.shape
    xs = np.clip(np.round(points[:, 0] + distance * normal[0]).astype(int), 0, width - 1)
    ys = np.clip(np.round(points[:, 1] + distance * normal[1]).astype(int), 0, height - 1)
    return gray[ys, xs]


def _side(gray: np.ndarray, start: np.ndarray, end: np.ndarray, centre: np.ndarray) -> bool | None:
    """Whether one side is a frame's (True), a photo's going on (False), or cannot be told (None:
    no pixels outside it, or flat on both sides with no step between)."""
    along = end - start
    normal = np.array([along[1], -along[0]]) / max(1e-9, float(np.hypot(*along)))
    points = start + np.linspace(0.1, 0.9, SAMPLES)[:, None] * along
    normal = -normal if np.dot(centre - points.mean(axis=0), normal) > 0 else normal  # outwards
    height, width = gray.shape
    outside_at = points + max(NEAR) * normal
    beyond = (outside_at[:, 0] < 0) | (outside_at[:, 0] > width - 1)
    beyond |= (outside_at[:, 1] < 0) | (outside_at[:, 1] > height - 1)
    if beyond.mean() > 0.5:  # the picture reaches the file's edge here
        return None
    outside = np.mean([_along(gray, points, normal, d) for d in NEAR], axis=0)
    inside = np.mean([_along(gray, points, normal, -d) for d in NEAR], axis=0)
    if outside.std() > FLAT:
        return False
    step = float(np.median(np.abs(outside - inside)))
    return True if inside.std() >= DETAILED or step >= STEP else None


def held_in_a_frame(outer: Image.Image, outline: Sequence[tuple[float, float]]) -> bool:
    """Whether the picture whose ``outline`` (in ``outer``'s pixels) lies inside ``outer`` is
    framed there: more of its sides that can be told are a frame's than a photo's."""
    gray = np.asarray(outer.convert("L"), np.float32)
    corners = np.asarray(outline, np.float64)
    if len(corners) < 3:
        return False
    centre = corners.mean(axis=0)
    sides = [_side(gray, corners[i], corners[(i + 1) % len(corners)], centre) for i in range(len(corners))]
    return sides.count(True) > sides.count(False)
