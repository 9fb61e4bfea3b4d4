"""Candidate pieces, found by looking for every small file in every picture it could be cut out of.

A half crop of a small photo is a picture the embedding puts far from its original: 6 of
flowers5's 20 planted half crops lay 30th to 1,085th among their originals' nearest, beyond the
PIECE_NEAREST that copy_pairs.py looks for pieces in. So pieces are proposed by their pixels: each
file that could be a piece (pieces.fits_inside, and at least MIN_SHARE of the picture) is shrunk
until it is about PROBE pixels across (by a power of two), and its middle PROBE x PROBE square is
correlated, at every place, with every picture it fits in shrunk by the same factor. All of one
factor's squares are correlated with all places of a picture at once (one matrix product; the
windows' norms from box filters), about 2.6 microseconds a piece and picture on 2 cores.

Measured on flowers5 (throwaway scripts, 600 half crops at random places, saved as JPEG at
quality 95-50): every one's original was the picture it correlated best with (at 0.75 or more);
of other photos, 1.1 % reached 0.8. The pieces.py check then decides (all 300 of another such
sample were cut from their originals there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from imgsim.images import pieces, ranking

PROBE = 16  # pixels across the square looked for, at the piece's shrunk size
MIN_SHARE = 0.1  # of the picture's pixels a piece shows at least (a third of each side): a picture
# more than 3.2 times a piece's sides is not looked in, so large photos are never decoded for it
LEAST = 0.7  # correlation below which nothing is proposed: half crops reached 0.75 and more
PER_PIECE = 2  # pictures proposed for each piece, the best correlated: the original was the first
MAX_PAIRS = 4_000_000  # pieces times pictures they fit in, looked at (about 10 s); beyond, none are
MAX_FILES = 50_000  # files whose sizes are read for it (44 microseconds a header: 2.2 s); beyond, none
MAX_PICTURES = 20_000  # pictures decoded to look in (0.3 ms each, small: 6 s); beyond, none are
MAX_SHRINK = 16  # the largest factor: a piece of LARGEST pixels is shrunk to 20
WINDOWS = 16_384  # places multiplied at once (1 KB of pixels each)

Size = tuple[int, int]
Grays = Callable[[int, int], Image.Image | None]  # a row's gray picture, its shorter side at least the
# pixels asked for where the file allows (decoded smaller where it can; None: unreadable)


def could_hold(piece: Size, picture: Size) -> bool:
    """Whether a file of ``piece`` pixels (width, height) is looked for in one of ``picture``."""
    return max(piece) <= pieces.LARGEST and bool(_holds(piece, *map(np.asarray, picture)))


def _holds(piece: Size, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Which pictures of ``width`` x ``height`` pixels a piece fits in (no side longer) and shows
    MIN_SHARE to pieces.MAX_SHARE of."""
    (w, h), area = piece, width * height
    return (w <= width) & (h <= height) & (w * h <= pieces.MAX_SHARE * area) & (w * h >= MIN_SHARE * area)


def shrink_for(piece: Size) -> int | None:
    """The power of two a piece and its pictures are shrunk by (its shorter side to PROBE or
    more); None for a piece under twice PROBE, which says too little at any size."""
    shorter = min(piece)
    if shorter < 2 * PROBE:
        return None
    factor = 2
    while factor * 2 <= MAX_SHRINK and shorter // (factor * 2) >= PROBE:
        factor *= 2
    return factor


def fitting_pairs(sizes: Sequence[Size | None], rows: Iterable[int] | None = None) -> np.ndarray | None:
    """Every (piece, picture) pair of rows whose sizes fit (could_hold), one a row of the answer,
    with one of ``rows`` if given (a build's new items); None where there are more than MAX_PAIRS."""
    if len(sizes) > MAX_FILES:
        return None
    known = [(row, size) for row, size in enumerate(sizes) if size is not None]
    smallest = [(row, size) for row, size in known if max(size) <= pieces.LARGEST and shrink_for(size)]
    largest_side = pieces.LARGEST / MIN_SHARE**0.5
    holders = np.array([row for row, size in known if max(size) <= largest_side], np.int64)
    if len(smallest) * len(holders) > 20 * MAX_PAIRS:  # even comparing their sizes costs too much
        return None
    width = np.array([sizes[row][0] for row in holders], np.int64)
    height = np.array([sizes[row][1] for row in holders], np.int64)
    wanted = np.zeros(len(sizes), bool)
    wanted[list(range(len(sizes)) if rows is None else rows)] = True
    found, count = [], 0
    for piece, size in smallest:
        fits = _holds(size, width, height)
        held = holders[fits] if wanted[piece] else holders[fits & wanted[holders]]
        found.append(np.stack([np.full(len(held), piece), held], axis=1))
        count += len(held)
        if count > MAX_PAIRS:
            return None
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def near_pairs(
    sizes: Sequence[Size | None],
    grays: Grays,
    rows: Iterable[int] | None = None,
) -> dict[tuple[int, int], float] | None:
    """Pairs of rows (piece, picture) where the piece correlates with a place of the picture at
    LEAST or more, the PER_PIECE best for each piece, with the correlation: ``sizes`` the files'
    own, ``grays`` their pictures (as pair_evidence.small_grays_of gives them). Only pairs with one of
    ``rows`` if given; None where there are more than MAX_PAIRS to look at, or MAX_PICTURES to
    decode (a build of a few small files in a large collection of small photos would decode them all)."""
    pairs = fitting_pairs(sizes, rows)
    if pairs is None or len(np.unique(pairs[:, 1])) > MAX_PICTURES:
        return None
    factors = np.array([shrink_for(sizes[piece]) for piece in pairs[:, 0]], np.int64)
    found: dict[tuple[int, int], float] = {}
    for factor in np.unique(factors):
        found |= _best_places(pairs[factors == factor], int(factor), sizes, grays)
    return found


def _shrunk(grays: Grays, row: int, size: Size | None, factor: int) -> np.ndarray | None:
    """A row's gray picture at its own size divided by ``factor`` (areas averaged)."""
    import cv2

    if size is None:
        return None
    wanted = (max(1, size[0] // factor), max(1, size[1] // factor))
    image = grays(row, min(wanted))
    if image is None:
        return None
    return cv2.resize(np.asarray(image, np.float32), wanted, interpolation=cv2.INTER_AREA)


def _probe(shrunk: np.ndarray) -> np.ndarray | None:
    """The middle PROBE x PROBE square, its mean taken away and its length 1 (None: flat)."""
    top, left = (shrunk.shape[0] - PROBE) // 2, (shrunk.shape[1] - PROBE) // 2
    square = shrunk[top : top + PROBE, left : left + PROBE].reshape(-1)
    if float(square.std()) < pieces.MIN_DETAIL:
        return None
    centred = square - square.mean()
    return centred / np.linalg.norm(centred)


def _places(shrunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every PROBE x PROBE window of a picture (one a row) and each one's length about its mean:
    a window times a centred probe, over that length, is their correlation."""
    import cv2

    windows = sliding_window_view(shrunk, (PROBE, PROBE)).reshape(-1, PROBE * PROBE)
    rows, cols = shrunk.shape[0] - PROBE + 1, shrunk.shape[1] - PROBE + 1

    def summed(pixels: np.ndarray) -> np.ndarray:
        box = cv2.boxFilter(pixels, -1, (PROBE, PROBE), anchor=(0, 0), normalize=False, borderType=0)
        return box[:rows, :cols].reshape(-1)

    total, squares = summed(shrunk), summed(shrunk * shrunk)
    spread = np.sqrt(np.maximum(squares - total * total / PROBE**2, 1e-6))
    return windows, spread.astype(np.float32)


def _best_places(
    pairs: np.ndarray,
    factor: int,
    sizes: Sequence[Size | None],
    grays: Grays,
) -> dict[tuple[int, int], float]:
    """near_pairs for the pairs whose pieces are shrunk by one ``factor``."""
    piece_rows, holder_rows = np.unique(pairs[:, 0]).tolist(), np.unique(pairs[:, 1]).tolist()
    shrunk_pieces = [_shrunk(grays, row, sizes[row], factor) for row in piece_rows]  # in one thread: small
    shrunk_holders = [_shrunk(grays, row, sizes[row], factor) for row in holder_rows]  # files decode at a
    # reduced scale in 0.3 ms, nearly all of it Python's, which threads made twice as slow
    probes = {row: None if s is None else _probe(s) for row, s in zip(piece_rows, shrunk_pieces, strict=True)}
    kept = [row for row in piece_rows if probes[row] is not None]
    if not kept:
        return {}
    matrix = np.stack([probes[row] for row in kept]).astype(np.float32).T  # type: ignore[misc]
    best = np.full((len(holder_rows), len(kept)), -1.0, np.float32)
    batch: list[tuple[int, np.ndarray, np.ndarray]] = []

    def correlate() -> None:
        windows = np.concatenate([w for _, w, _ in batch])
        spread = np.concatenate([s for _, _, s in batch])
        scores = (windows @ matrix) / spread[:, None]
        starts = np.cumsum([0] + [len(w) for _, w, _ in batch[:-1]])
        best[[n for n, _, _ in batch]] = np.maximum.reduceat(scores, starts, axis=0)
        batch.clear()

    for n, shrunk in enumerate(shrunk_holders):
        if shrunk is None or min(shrunk.shape) < PROBE:
            continue
        batch.append((n, *_places(shrunk)))
        if sum(len(w) for _, w, _ in batch) >= WINDOWS:
            correlate()
    if batch:
        correlate()
    looked = pairs[np.isin(pairs[:, 0], kept)]
    scores = best[np.searchsorted(holder_rows, looked[:, 1]), np.searchsorted(kept, looked[:, 0])]
    looked, scores = looked[scores >= LEAST], scores[scores >= LEAST]
    chosen = ranking.ranks(looked[:, 0], looked[:, 1], scores) < PER_PIECE  # each piece's best
    proposed = zip(looked[chosen].tolist(), scores[chosen].tolist(), strict=True)
    return {(piece, holder): round(score, 4) for (piece, holder), score in proposed}
