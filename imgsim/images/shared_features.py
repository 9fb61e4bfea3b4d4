"""Candidate copies by the local features two pictures share: a third way to a copy's original,
for copies the embedding puts far (a screenshot inside an app's window, a hue shift, a tiled
watermark) and whose perceptual hashes differ.

A copy keeps many of its picture's ORB descriptors nearly unchanged; descriptors of the same
patch often agree exactly on one 32-bit word of their eight. So the stored descriptors of every
picture are sorted by each word in turn, and two pictures get one vote for each word their
descriptors share (the classic inverted file of near-duplicate detection, with words cut from the
descriptors instead of learned). A word that many descriptors share (STOP_WORD: flat sky, text,
an app's buttons) says nothing and is left out. The PER_ROW pictures each picture shares
most with, if they share MIN_SHARED words, are candidate pairs; geometry then decides.

Measured on flowers5's photos with 20 planted copies of each harder kind (bench/hard_copies.py):
the copy was the most shared picture of its original for 20 of 20 screenshots, captions and
sepia copies, 17 of 20 hue shifts and watermarks (the embedding's nearest found 4 of 20
screenshots); the pictures' 1.2 million descriptors looked at in 4 s on 2 cores.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from imgsim.images import ranking

STOP_WORD = 64  # descriptors sharing one word beyond this many are left out, or beyond an eighth
# of the pictures (at least 4) in a smaller collection: among 48 pictures, where no word reaches 64,
# words common to many photos outvoted a watermarked copy's own (it ranked third; with 6, first)
MAX_DESCRIPTORS = 5_000_000  # about 18,000 pictures: looking costs about 150 bytes of memory a
# descriptor (175 MB and 2-3 s for flowers5's 1.1 million on 2 cores; 477 bytes before the codes were
# counted in place), and more than in proportion beyond; a larger collection is not looked at, and its
# build says so
PER_ROW = 2  # the rows each row shares most with are candidates: an overlay (a watermark's text)
# makes the copies under it share words, so the first may be another copy; the second is nearly free
# (it verifies or fails fast: 1 s more on flowers5's 4,461 pictures)
MIN_SHARED = 10  # words two pictures must share to be a candidate: random pairs share 2-11
# (99.9 % of them, on flowers5); a copy 4-500, its picture's most shared at 10 and more


def near_pairs(
    descriptors: np.ndarray, owners: np.ndarray, rows: Iterable[int] | None = None
) -> dict[tuple[int, int], int]:
    """Pairs of rows (lower first) where one is among the PER_ROW rows the other shares most with and
    they share at least MIN_SHARED words, with the words they share: ``descriptors`` (n, 32) uint8 of
    all rows, ``owners`` (n,) the row of each. Only pairs with one of ``rows`` if given (a build's new
    items)."""
    if not len(descriptors):
        return {}
    rows_count = int(owners.max()) + 1
    stop_word = min(STOP_WORD, max(4, rows_count // 8))
    code_type = np.uint32 if rows_count * rows_count <= 2**32 else np.int64
    rows_of = owners.astype(code_type)
    parts = [_shared_in(word, rows_of, rows_count, stop_word) for word in _words(descriptors)]
    pairs, shared = _often(parts, MIN_SHARED)  # a pair below it is nobody's choice, nor beats one above
    pairs = pairs.astype(np.int64)
    if not len(pairs):
        return {}
    first, second = pairs // rows_count, pairs % rows_count
    chosen = _most_shared(first, second, shared)
    if rows is not None:
        wanted = np.zeros(rows_count, bool)
        wanted[[row for row in rows if row < rows_count]] = True
        chosen &= wanted[first] | wanted[second]
    return {
        (int(a), int(b)): int(count)
        for a, b, count in zip(first[chosen], second[chosen], shared[chosen], strict=True)
    }


def _words(descriptors: np.ndarray) -> list[np.ndarray]:
    """Each descriptor's 32 bytes as 8 words of 32 bits, one array a word."""
    viewed = np.ascontiguousarray(descriptors, np.uint8).view(np.uint32)
    return [viewed[:, column] for column in range(viewed.shape[1])]


def _shared_in(word: np.ndarray, owners: np.ndarray, rows_count: int, stop_word: int) -> np.ndarray:
    """One code (lower row * rows_count + higher row, in ``owners``' type) for each two descriptors
    of different rows with the same ``word``, in buckets of at most ``stop_word`` descriptors."""
    order = np.argsort(word, kind="stable")
    keys, rows = word[order], owners[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    kept = np.repeat((sizes >= 2) & (sizes <= stop_word), sizes)
    keys, rows = keys[kept], rows[kept]
    codes = []
    for apart in range(1, stop_word):  # every two of a bucket lie within stop_word of each other
        same = keys[apart:] == keys[:-apart]
        if not same.any():
            break
        a, b = rows[:-apart][same], rows[apart:][same]
        differ = a != b
        a, b = a[differ], b[differ]
        codes.append(np.minimum(a, b) * rows_count + np.maximum(a, b))
    return np.concatenate(codes) if codes else np.zeros(0, owners.dtype)


def _often(parts: list[np.ndarray], at_least: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes that occur ``at_least`` times in all ``parts`` together, and how often each does.
    The codes are most of what looking holds (21 million for flowers5's 1.1 million descriptors,
    most of them once or twice), so each part is let go as it is copied, the whole is sorted in
    place, and only the few codes often enough are counted: the codes are held about once."""
    codes = np.empty(sum(len(part) for part in parts), parts[0].dtype if parts else np.int64)
    filled = 0
    while parts:
        part = parts.pop(0)
        codes[filled : filled + len(part)] = part
        filled += len(part)
        del part
    codes.sort()
    span = at_least - 1  # a code at i occurs at_least times from there where it is the code at i + span
    starts = codes[:-span][codes[span:] == codes[:-span]] if span else codes
    often = np.unique(starts)
    counts = np.searchsorted(codes, often, "right") - np.searchsorted(codes, often, "left")
    return often, counts


def _most_shared(first: np.ndarray, second: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """For each pair, whether one of its rows shares more with the other than with all but
    PER_ROW - 1 others (ties: the lower rows)."""
    return ranking.among_the_best(first, second, shared, PER_ROW)
