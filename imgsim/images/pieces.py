"""Whether one picture is a piece cut out of another, pixel for pixel: a crop saved at its own size.

A half crop (half of each side, a quarter of the picture) of a small photo is a picture of 64
pixels that local features hardly describe: enlarged to the analysed size it is soft, and its
keypoints are of another scale than its original's. 9 of flowers5's 20 planted half crops had 12
or more agreeing matches. But a crop saved as it was cut keeps the original's pixels at their own
scale, so the piece is looked for in the picture directly: normalised cross-correlation of its
gray pixels at every place it fits (OpenCV's matchTemplate), both shrunk by one factor where the
picture is larger than the analysed size. Measured on flowers5 (docs/matching.md): the 20 half
crops, saved as PNG or as JPEG at quality 90, 70 and 50, correlate at 0.995 or more where they were
cut; each against every other photo, 88,800 places of best fit, at most 0.941.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from imgsim.images import geometry

MIN_CORRELATION = 0.98  # where the piece fits best; other photos' best places reached 0.941
MIN_DETAIL = 8.0  # the piece's gray standard deviation: a flat piece (sky) fits anywhere
MIN_SIDE = 32  # pixels of the piece, at the size it is looked for at: fewer say nothing
MAX_SHARE = 0.5  # of the picture's pixels: a piece shows no more (a 70 % crop, 49 %, is one); larger
# crops verify by their keypoints (0.97-1.00 of flowers5's 85 % and 70 % crops), and every pair of
# sizes that fits is a candidate: 2,100 flowers at three sizes made 18,500 of them at 0.9, 12,100 at 0.5
COARSE = 0.8  # the least correlation at a quarter of the size, looked at first: the half crops, as PNG,
# JPEG q90 and q50 and cut 1-3 pixels off the quarter grid, at 0.875 and more; 1.2 % of other photos
COARSE_STEP = 4  # the quarter size
COARSE_LEAST = 16  # pixels of the piece at the quarter size for that look (as measured: 64 at full)
SIDE = geometry.ANALYSED_SIDE  # the picture's longer side is looked at no larger than this
LARGEST = geometry.ANALYSED_SIDE  # a piece with a longer side is analysed shrunk, sharp enough for its
# keypoints, and left to them: decoding its picture for every candidate it fits would cost a build of
# large photos far more (flowers5's half crops are 64 pixels, holidays_a's 162)


def fits_inside(piece: tuple[int, int], picture: tuple[int, int]) -> bool:
    """Whether a file of ``piece`` pixels (width, height) could be a piece cut out of one of
    ``picture`` pixels that is looked for here: no side longer, clearly smaller, and small (LARGEST)."""
    (width, height), (outer_width, outer_height) = piece, picture
    smaller = width * height <= MAX_SHARE * outer_width * outer_height
    return width <= outer_width and height <= outer_height and smaller and max(piece) <= LARGEST


def _gray_at(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    resized = image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized.convert("L"), np.float32)


def _could_fit(searched: np.ndarray, sought: np.ndarray) -> bool:
    """Whether the piece fits somewhere at COARSE, both at a quarter of the size (a sixteenth of
    the cost; a piece under COARSE_LEAST there is looked for at full size only)."""
    import cv2

    if min(sought.shape) < COARSE_LEAST * COARSE_STEP:
        return True

    def quarter(pixels: np.ndarray) -> np.ndarray:
        size = (pixels.shape[1] // COARSE_STEP, pixels.shape[0] // COARSE_STEP)
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)

    return float(cv2.matchTemplate(quarter(searched), quarter(sought), cv2.TM_CCOEFF_NORMED).max()) >= COARSE


def cut_from(
    picture: Image.Image,
    piece: Image.Image,
    picture_size: tuple[int, int],
    piece_size: tuple[int, int],
    piece_first: bool = False,
) -> geometry.Match | None:
    """The match of ``picture`` (A) with ``piece`` (B), or with ``piece_first`` of the piece (A)
    with the picture (B), where the piece is cut out of the picture pixel for pixel; else None.
    The sizes are the files' own (the images may have been decoded smaller)."""
    import cv2

    if not fits_inside(piece_size, picture_size):
        return None
    factor = min(1.0, SIDE / max(picture_size))
    outer = (max(1, round(picture_size[0] * factor)), max(1, round(picture_size[1] * factor)))
    inner = (max(1, round(piece_size[0] * factor)), max(1, round(piece_size[1] * factor)))
    if min(inner) < MIN_SIDE:
        return None
    searched, sought = _gray_at(picture, outer), _gray_at(piece, inner)
    if float(sought.std()) < MIN_DETAIL or not _could_fit(searched, sought):
        return None
    correlations = cv2.matchTemplate(searched, sought, cv2.TM_CCOEFF_NORMED)
    _, best, _, (left, top) = cv2.minMaxLoc(correlations)
    if best < MIN_CORRELATION:
        return None
    x, y = left / factor, top / factor  # where the piece's corner lies in the picture's own pixels
    if piece_first:
        return geometry.matched_by(np.array([[1.0, 0.0, x], [0.0, 1.0, y]]), 0, piece_size, picture_size)
    return geometry.matched_by(np.array([[1.0, 0.0, -x], [0.0, 1.0, -y]]), 0, picture_size, piece_size)
