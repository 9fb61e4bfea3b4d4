"""Candidate copies by the local features two pictures share: a third way to a copy's original,
for copies the embedding puts far (a screenshot inside an app's window, a hue shift, a tiled
watermark) and whose perceptual hashes differ.

A copy keeps many of its picture's ORB descriptors nearly unchanged; descriptors of the same
patch often agree exactly on one 32-bit word of their eight. So the stored descriptors of every
picture are sorted by each word in turn, and two pictures get one vote for each word their
descriptors share (the classic inverted file of near-duplicate detection, with words cut from the
descriptors instead of learned). A word that more than STOP_WORD descriptors share (flat sky,
text, an app's buttons) says nothing and is left out. Each picture's most shared other picture,
if they share MIN_SHARED words, is a candidate pair; geometry then decides, as for the others.

Measured on flowers5's photos with 20 planted copies of each harder kind (bench/hard_copies.py):
the copy was the most shared picture of its original for 20 of 20 screenshots, captions and
sepia copies, 17 of 20 hue shifts and watermarks (the embedding's nearest found 4 of 20
screenshots); about one candidate pair a picture, sorting 1.2 million descriptors in 3 s.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

WORD_BYTES = 4  # a descriptor's 32 bytes are 8 words
STOP_WORD = 64  # descriptors sharing one word beyond this many are left out
MIN_SHARED = 10  # words two pictures must share to be a candidate: random pairs share 2-11
# (99.9 % of them, on flowers5); a copy 4-500, its picture's most shared at 10 and more


def near_pairs(
    descriptors: np.ndarray, owners: np.ndarray, rows: Iterable[int] | None = None
) -> dict[tuple[int, int], int]:
    """Pairs of rows (lower first) where one is the other's most shared row and they share at
    least MIN_SHARED words, with the words they share: ``descriptors`` (n, 32) uint8 of all rows,
    ``owners`` (n,) the row of each. Only pairs with one of ``rows`` if given (a build's new items)."""
    if not len(descriptors):
        return {}
    rows_count = int(owners.max()) + 1
    codes = np.concatenate([_shared_in(word, owners, rows_count) for word in _words(descriptors)])
    pairs, shared = np.unique(codes, return_counts=True)
    if not len(pairs):
        return {}
    first, second = pairs // rows_count, pairs % rows_count
    best = _most_shared(first, second, shared) | _most_shared(second, first, shared)
    chosen = best & (shared >= MIN_SHARED)
    if rows is not None:
        wanted = np.zeros(rows_count, bool)
        wanted[[row for row in rows if row < rows_count]] = True
        chosen &= wanted[first] | wanted[second]
    return {
        (int(a), int(b)): int(count)
        for a, b, count in zip(first[chosen], second[chosen], shared[chosen], strict=True)
    }


def _words(descriptors: np.ndarray) -> list[np.ndarray]:
    viewed = np.ascontiguousarray(descriptors, np.uint8).view(np.uint32)
    return [viewed[:, column] for column in range(viewed.shape[1])]


def _shared_in(word: np.ndarray, owners: np.ndarray, rows_count: int) -> np.ndarray:
    """One code (lower row * rows_count + higher row) for each two descriptors of different rows
    with the same ``word``, in buckets of at most STOP_WORD descriptors."""
    order = np.argsort(word, kind="stable")
    keys, rows = word[order], owners[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    kept = np.repeat((sizes >= 2) & (sizes <= STOP_WORD), sizes)
    keys, rows = keys[kept], rows[kept]
    codes = []
    for apart in range(1, STOP_WORD):  # every two of a bucket lie within STOP_WORD of each other
        same = keys[apart:] == keys[:-apart]
        if not same.any():
            break
        a, b = rows[:-apart][same], rows[apart:][same]
        differ = a != b
        a, b = a[differ], b[differ]
        codes.append(np.minimum(a, b) * rows_count + np.maximum(a, b))
    return np.concatenate(codes) if codes else np.zeros(0, np.int64)


def _most_shared(rows: np.ndarray, others: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """For each pair, whether its ``others`` row is the one its ``rows`` row shares the most with
    (ties: the lower row)."""
    order = np.lexsort((others, -shared, rows))
    first_of_row = np.r_[True, rows[order][1:] != rows[order][:-1]]
    best = np.zeros(len(rows), bool)
    best[order[first_of_row]] = True
    return best
