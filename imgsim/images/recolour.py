"""Whether a copy's colours were changed: a hue shift, a sepia or a colour filter, more or less
saturated colour, told from re-encoding, brightening or darkening, which keep each pixel's hue and
saturation.

The copy is carried onto its picture through the verified match. For the pixels that hold colour in
both (chroma above COLOURED in CIELAB), the turn of hue between them is taken; its median says it.
Measured on 25 flowers5 photos per kind (as the build reads them): re-encoded, resized, framed,
cropped, turned, captioned, watermarked, screenshots and copies 40 % brighter or darker turned hue
by at most 10.1 degrees (median); hue shifts of 40 degrees by 19 and more for 9 in 10, sepia copies
by 14 and more for 9 in 10 (a nearly gray photo has too little colour to tell). A saturation filter
keeps hue: over the pixels neither dark, bright (clipped where a copy was brightened) nor gray, the
ratio of the two pictures' median HSV saturation is taken, the larger over the smaller. The same
kinds of copy kept it within 1.03 (watermarked copies, their white text over the picture: 1.13);
colour enhanced 1.5 or 2 times raised it to 1.09-1.91 (1.19 and more for 9 in 10), half the colour
taken out to 1.58-1.97, sepia to 1.01-3.06.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from imgsim.images import geometry

HUE_TURN = 12.0  # degrees of median hue turn that make a copy recoloured
SATURATION_CHANGE = 1.15  # the larger median saturation over the smaller beyond which one was changed
SATURATION_FLOOR = 0.15  # HSV saturation and value of a pixel whose saturation is compared
BRIGHT = 0.9  # HSV value from which a pixel is left out: a brightened copy clips its light colours
COLOURED = 8.0  # CIELAB chroma (a*, b*) of a pixel that holds colour
MIN_COLOURED = 0.2  # of the shared pixels: fewer, and the pictures are too gray to tell
SIDE = 160  # pixels the pictures are compared at (their longer side)


def _side_by_side(
    a: Image.Image, b: Image.Image, match: geometry.Match
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each pixel's colour (_planes) of A and of B carried onto A through ``match`` (small, SIDE),
    each (h, w, 4): B's NaN where it does not reach; None where there is no transform."""
    import cv2

    if match.transform is None:
        return None
    first, factor_a = _small(ImageOps.mirror(a) if match.mirrored else a)
    second, factor_b = _small(b)
    forward = geometry.transform_between(match, factor_a, factor_b)
    theirs = cv2.warpAffine(
        _planes(np.asarray(second)),
        cv2.invertAffineTransform(forward),
        first.size,
        flags=cv2.INTER_LINEAR,
        borderValue=(np.nan,) * 4,
    )
    return _planes(np.asarray(first)), theirs


def _hue_turn(mine: np.ndarray, theirs: np.ndarray) -> float | None:
    """The median turn of hue (degrees) from A's chroma to B's carried onto it, over the pixels
    that hold colour in both; None where too few do."""
    shared = ~np.isnan(theirs[..., 0])
    coloured = shared & (np.hypot(*np.moveaxis(mine, -1, 0)) > COLOURED)
    coloured &= np.hypot(*np.moveaxis(np.nan_to_num(theirs), -1, 0)) > COLOURED
    if not shared.any() or coloured.sum() < MIN_COLOURED * shared.sum():
        return None
    turned = np.arctan2(mine[..., 1], mine[..., 0]) - np.arctan2(theirs[..., 1], theirs[..., 0])
    return float(np.degrees(np.median(np.abs(np.angle(np.exp(1j * turned[coloured]))))))


def _saturation_ratio(mine: np.ndarray, theirs: np.ndarray) -> float | None:
    """The larger of A's and B's median HSV saturation over the smaller (their saturation and
    value, B's carried onto A), over the pixels gray, dark or bright in neither; None where too
    few are."""
    shared = ~np.isnan(theirs[..., 0])
    value = np.nan_to_num(theirs[..., 1])
    compared = shared & (mine[..., 0] > SATURATION_FLOOR) & (mine[..., 1] > SATURATION_FLOOR)
    compared &= (mine[..., 1] < BRIGHT) & (value > SATURATION_FLOOR) & (value < BRIGHT)
    if not shared.any() or compared.sum() < MIN_COLOURED * shared.sum():
        return None
    medians = float(np.median(theirs[..., 0][compared])), float(np.median(mine[..., 0][compared]))
    return max(medians) / max(1e-6, min(medians))


def recoloured(a: Image.Image, b: Image.Image, match: geometry.Match) -> bool:
    """Whether B's colours are A's changed: hue turned (HUE_TURN) or saturation raised or lowered
    (SATURATION_CHANGE), both read off one carrying of B onto A."""
    both = _side_by_side(a, b, match)
    if both is None:
        return False
    mine, theirs = both
    turn = _hue_turn(mine[..., :2], theirs[..., :2])
    if turn is not None and turn > HUE_TURN:
        return True
    ratio = _saturation_ratio(mine[..., 2:], theirs[..., 2:])
    return ratio is not None and ratio > SATURATION_CHANGE


def _small(image: Image.Image) -> tuple[Image.Image, float]:
    factor = SIDE / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.convert("RGB").resize(size, Image.Resampling.BILINEAR), factor


def _planes(pixels: np.ndarray) -> np.ndarray:
    """Each pixel's CIELAB a* and b* (centred on gray), then its HSV saturation and value in 0..1,
    (h, w, 4) float32."""
    import cv2

    chroma = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB).astype(np.float32)[..., 1:] - 128.0
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV).astype(np.float32) / 255.0
    return np.ascontiguousarray(np.concatenate([chroma, hsv[..., 1:]], axis=-1))
