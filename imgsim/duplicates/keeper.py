"""Which copy of a group to keep, by stated rules, and the rule that decided it.

The rules are a setting (``IMGSIM_KEEPER_RULES``, ``--keeper-rules``, in order; the lowest id
breaks a last tie):

    unframed   the picture alone over a file that holds it in a frame (a border, a caption bar, an
               app's window: the frame is not the picture, and a screenshot's picture is enlarged)
    pixels     the most pixels
    uncropped  one that shows all of the picture over one that shows part of it (a crop)
    colour     a picture in colour over a gray one (one channel, or gray pixels in three)
    format     a lossless file (PNG, TIFF, BMP, lossless WebP) over a lossy one, then the least
               compressed (the most bytes a pixel: a JPEG saved at higher quality); not asked
               where the group's pictures differ (recoloured, mirrored, under an overlay): an
               edit saved as PNG is not a better file of the picture than its JPEG
    oldest     the oldest file (its modification time)
    newest     the newest file

Each rule reads facts a group already has (the files' headers and the verified matches): choosing
costs no decoding. Similar shots (a burst: one scene, framed apart) are kept by SHOT_RULES, the
sharpest first, which reads each shot's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from imgsim import config
from imgsim.images import geometry, imaging

RULES = config.KEEPER_RULES
DEFAULT_RULES = tuple(config.Config.keeper_rules.split(","))
LOSSLESS = frozenset({"PNG", "TIFF", "BMP", "GIF"})
CROPPED_BELOW = 0.93  # a copy that shows less than this share of another is a crop of it


@dataclass(frozen=True)
class Facts:
    """What the rules compare of one file, read from its header once."""

    id: int
    pixels: int  # 0 if the file cannot be read
    one_channel: bool
    lossless: bool
    bytes_per_pixel: float
    mtime_ns: int
    cropped: bool = False  # shows only part of another member's picture
    framed: bool = False  # holds another member's picture in a frame (images/frames.py)
    altered: bool = False  # the group's pictures differ (recoloured, mirrored, an overlay)
    colourless: bool = False  # its pixels carry no colour (a grayscale copy saved in RGB)
    sharpness: float = 0.0  # similar shots only (sharpness_of)


SHOT_RULES = ("sharpest", "pixels", "oldest")


def sharpness_of(path: Path) -> float:
    """How sharp a picture is: the variance of its Laplacian over the variance of its pixels, at
    the size local features are found at (a shaken or out-of-focus shot of a burst scores lower;
    dividing by the contrast keeps a brighter exposure from counting as sharper). 0: unreadable."""
    import cv2
    import numpy as np

    try:
        gray, _ = geometry.analysed_gray(imaging.open_rgb(path, min_side=geometry.ANALYSED_SIDE))
    except imaging.UnreadableImage:
        return 0.0
    pixels = np.asarray(gray, np.float64)
    return float(cv2.Laplacian(pixels, cv2.CV_64F).var() / max(pixels.var(), 1e-6))


def facts_of(item_id: int, path: Path, mtime_ns: int) -> Facts:
    """A file's facts from its header (unreadable: no pixels, so never kept over a readable one)."""
    try:
        with Image.open(path) as image:
            pixels = image.width * image.height
            lossless = image.format in LOSSLESS or bool(image.format == "WEBP" and image.info.get("lossless"))
            one_channel = image.mode in imaging.ONE_CHANNEL_MODES
        size = path.stat().st_size
    except (OSError, ValueError):
        return Facts(item_id, 0, False, False, 0.0, mtime_ns)
    return Facts(item_id, pixels, one_channel, lossless, size / max(1, pixels), mtime_ns)


def _value(rule: str, facts: Facts) -> tuple:
    """The rule's sort value: lower is kept first."""
    if rule == "unframed":
        return (facts.framed,)
    if rule == "pixels":
        return (-facts.pixels,)
    if rule == "uncropped":
        return (facts.cropped,)
    if rule == "colour":
        return (facts.one_channel or facts.colourless,)
    if rule == "format":
        return (False, 0.0) if facts.altered else (not facts.lossless, -round(facts.bytes_per_pixel, 3))
    if rule == "oldest":
        return (facts.mtime_ns,)
    if rule == "newest":
        return (-facts.mtime_ns,)
    if rule == "sharpest":
        return (-round(facts.sharpness, 4),)
    raise ValueError(f"unknown keeper rule {rule!r}: the rules are {', '.join(RULES)}")


def ranked(members: Sequence[Facts], rules: Sequence[str] = DEFAULT_RULES) -> list[Facts]:
    """The members in the order the rules keep them (the lowest id last of all)."""
    return sorted(members, key=lambda f: (*(v for rule in rules for v in _value(rule, f)), f.id))


_SAID = {
    "unframed": "the picture alone (another holds it in a frame: a border, a caption bar, a window)",
    "pixels": "the most pixels ({pixels:,})",
    "uncropped": "all of the picture (the other copies show part of it)",
    "colour": "in colour rather than gray",
    "format": "the better file: {format}",
    "oldest": "the oldest file",
    "newest": "the newest file",
    "sharpest": "the sharpest shot",
}


def why(keeper: Facts, runner_up: Facts, rules: Sequence[str] = DEFAULT_RULES) -> str:
    """Which rule chose ``keeper`` over ``runner_up``, said as a reason ("as many pixels, ..."
    where the pixels were equal and the rule came after them)."""
    prefix = ""
    for rule in rules:
        if _value(rule, keeper) != _value(rule, runner_up):
            kind = "lossless" if keeper.lossless and not runner_up.lossless else "less compressed"
            return prefix + _SAID[rule].format(pixels=keeper.pixels, format=kind)
        prefix = "as many pixels, " if rule == "pixels" else prefix
    return prefix + "otherwise alike: the lowest id"


def of(cfg: config.Config) -> tuple[str, ...]:
    """The rules a configuration names (config.py checked them)."""
    return tuple(rule.strip() for rule in cfg.keeper_rules.split(",") if rule.strip())
