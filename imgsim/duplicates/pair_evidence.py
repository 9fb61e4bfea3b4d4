"""What judging a candidate pair reads of each row's file, each read only as asked for: its local
features (and mirrored), its picture, its capture time and its own size (copy_pairs.py judges)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim.duplicates import keeper
from imgsim.images import capture, frames, geometry, imaging, overlays, pieces, recolour, same_picture
from imgsim.index import store


def features_of(
    root: Path, items: list[store.Item], max_pixels: int, mirrored: bool = False
) -> Callable[[int], geometry.Features | None]:
    """Features of a row's file (``mirrored``: of the file mirrored left to right), computed the
    first time they are asked for (None: unreadable)."""
    cache: dict[int, geometry.Features | None] = {}

    def get(row: int) -> geometry.Features | None:
        if row not in cache:
            try:
                image = imaging.open_rgb(root / items[row].path, max_pixels, geometry.ANALYSED_SIDE)
                cache[row] = geometry.mirrored_features(image) if mirrored else geometry.features(image)
            except imaging.UnreadableImage:
                cache[row] = None
        return cache[row]

    return get


def capture_times_of(root: Path, items: list[store.Item]) -> Callable[[int], capture.Taken | None]:
    """When each row's photo was taken (EXIF), read from its file's header as asked for."""
    return lambda row: capture.taken_at(root / items[row].path)


def sizes_of(root: Path, items: list[store.Item]) -> Callable[[int], tuple[int, int] | None]:
    """Each row's file's own width and height (as shown), read from its header once."""
    cache: dict[int, tuple[int, int] | None] = {}

    def get(row: int) -> tuple[int, int] | None:
        if row not in cache:
            cache[row] = imaging.upright_size(root / items[row].path)
        return cache[row]

    return get


GRAYS_KEPT = 2048  # pictures' grays kept while pieces are looked for (at most 100 KB each, 8-16 KB for
# small photos): a row is asked for by each of its candidates, and decoding it each time cost more
# than looking (2,100 flowers at three sizes: 11,000 decodes for 18,600 pairs with 256 kept)


def grays_of(root: Path, items: list[store.Item], max_pixels: int) -> Callable[[int], Image.Image | None]:
    """A row's picture in gray, its longer side at most the size pieces are looked for at (None:
    unreadable), the last GRAYS_KEPT asked for kept: what pieces are looked for in (pieces.py)."""

    @functools.lru_cache(maxsize=GRAYS_KEPT)
    def get(row: int) -> Image.Image | None:
        try:
            image = imaging.open_rgb(root / items[row].path, max_pixels, pieces.SIDE).convert("L")
        except imaging.UnreadableImage:
            return None
        factor = pieces.SIDE / max(image.size)
        if factor >= 1:
            return image
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.Resampling.BILINEAR)

    return get


def small_grays_of(
    root: Path, items: list[store.Item], max_pixels: int
) -> Callable[[int, int], Image.Image | None]:
    """A row's picture in gray, decoded at a reduced scale where both sides stay at least the
    pixels asked for (JPEG's own scaled decoding; None: unreadable): what pieces are first looked
    for in, every picture they fit in (images/piece_search.py), at a sixteenth of a full decode's
    pixels."""

    def get(row: int, side: int) -> Image.Image | None:
        try:
            return imaging.open_rgb(root / items[row].path, max_pixels, side).convert("L")
        except imaging.UnreadableImage:
            return None

    return get


def pictures_of(root: Path, items: list[store.Item], max_pixels: int) -> Callable[[int], Image.Image | None]:
    """A row's picture at the size its features are found at (None: unreadable), read anew each
    time: only the pairs that verify are looked at again."""

    def get(row: int) -> Image.Image | None:
        try:
            return imaging.open_rgb(root / items[row].path, max_pixels, geometry.ANALYSED_SIDE)
        except imaging.UnreadableImage:
            return None

    return get


HOLDS = 0.9  # of a picture shown in another file: it lies wholly inside it (framed, or cropped from it)
SHOWS_PART = keeper.CROPPED_BELOW  # of a file the other picture fills, below which it holds more


@dataclass(frozen=True)
class Looked:
    """What looking again at both pictures of a verified pair told: whether they agree beyond the
    matched points (images/same_picture.py) and the share (None: could not be told, the match
    stands), whether one's colours are the other's turned (images/recolour.py), whether the
    file that holds the other's picture wholly holds it in a frame (images/frames.py), and which
    carries something laid over the picture (0: A, 1: B, None: neither; same_picture.overlaid)."""

    agrees: bool
    share: float | None
    recoloured: bool
    framed: bool
    overlaid: int | None = None


def holder_of(match: geometry.Match) -> int | None:
    """Which image of a match (0: A, 1: B) holds all of the other's picture and more, if one does."""
    if match.coverage_b >= HOLDS and match.coverage_a < SHOWS_PART:
        return 0
    if match.coverage_a >= HOLDS and match.coverage_b < SHOWS_PART:
        return 1
    return None


def agreed(match: geometry.Match, pictures: Callable[[int], Image.Image | None], a: int, b: int) -> Looked:
    """Rows ``a`` and ``b``, verified as ``match``, looked at again (Looked)."""
    first, second = pictures(a), pictures(b)
    if first is None or second is None:
        return Looked(True, None, False, False)
    shares = same_picture.sides(first, second, match)
    told = [side for side in shares if side is not None]
    share = max(told) if told else None
    agrees = share is None or share >= same_picture.MIN_AGREEMENT
    holder = holder_of(match)
    framed = holder is not None and frames.held_in_a_frame(
        (first, second)[holder], match.b_in_a if holder == 0 else match.a_in_b
    )
    shared = None if share is None else round(share, 3)
    turned = recolour.recoloured(first, second, match)
    return Looked(agrees, shared, turned, framed, same_picture.overlaid(shares))


def could_be_piece(sizes: Callable[[int], tuple[int, int] | None], a: int, b: int) -> bool:
    """Whether one of two rows' files could be cut out of the other's (by their sizes alone)."""
    size_a, size_b = sizes(a), sizes(b)
    if size_a is None or size_b is None:
        return False
    return pieces.fits_inside(size_a, size_b) or pieces.fits_inside(size_b, size_a)


def cut(
    pair: tuple[int, int],
    sizes: Callable[[int], tuple[int, int] | None],
    grays: Callable[[int], Image.Image | None],
) -> geometry.Match | None:
    """The match of a pair where one is a piece cut out of the other pixel for pixel (pieces.py),
    looked for in their ``grays``."""
    size_a, size_b = sizes(pair[0]), sizes(pair[1])
    if size_a is None or size_b is None:
        return None
    piece_first = pieces.fits_inside(size_a, size_b)  # else B is the piece, if either is
    if not piece_first and not pieces.fits_inside(size_b, size_a):
        return None
    first, second = grays(pair[0]), grays(pair[1])
    if first is None or second is None:
        return None
    if piece_first:
        return pieces.cut_from(second, first, size_b, size_a, piece_first=True)
    return pieces.cut_from(first, second, size_a, size_b)


def same_pixels(
    pair: tuple[int, int],
    sizes: Callable[[int], tuple[int, int] | None],
    grays: Callable[[int], Image.Image | None],
) -> tuple[geometry.Match, overlays.SamePixels] | None:
    """Where a pair's files are of one size and show the same picture pixel for pixel, perhaps
    with something laid over one (overlays.py): the match they make, each over the other whole."""
    size_a, size_b = sizes(pair[0]), sizes(pair[1])
    if size_a is None or size_a != size_b:
        return None
    first, second = grays(pair[0]), grays(pair[1])
    same = overlays.same_pixels(first, second) if first is not None and second is not None else None
    if same is None:
        return None
    return geometry.matched_by(np.eye(2, 3), 0, size_a, size_b), same


@dataclass(frozen=True)
class Evidence:
    """What find_pairs reads of a row, each as asked for: its local features; its mirrored ones
    (a mirrored copy); its picture (the agreement beyond the matched points, the colours); when its
    photo was taken (EXIF); its file's own size and its picture in gray (a piece cut out of another:
    it fits inside, and is found there). Each None: not looked at."""

    features: Callable[[int], geometry.Features | None]
    mirrored: Callable[[int], geometry.Features | None] | None = None
    pictures: Callable[[int], Image.Image | None] | None = None
    taken: Callable[[int], capture.Taken | None] | None = None
    sizes: Callable[[int], tuple[int, int] | None] | None = None
    grays: Callable[[int], Image.Image | None] | None = None
