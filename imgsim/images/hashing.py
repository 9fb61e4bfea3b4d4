"""Perceptual hashes: a second, colour-blind way to a copy's original.

The embedding ranks a grayscale copy's original among its 20 nearest only 0.46 of the time on
flowers5 (it sees colour); the 64-bit DCT hash of the gray picture (imagehash's ``phash``, the
hash imagededup's PHash also uses) puts it at distance 0 for most and within a few bits for
re-encoded, resized, brightened and turned copies. Hashes are stored per item (index/keypoints.py)
and compared by Hamming distance, a popcount over 8 bytes an item.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from imgsim.images import ranking

BITS = 64
TURNS = (0, 90, 180, 270)  # a copy turned by a quarter turn is found by the query turned back
HASHED, SHRUNK_PER_BIT = 8, 4  # imagehash's phash: 8 x 8 bits from the DCT of 32 x 32 pixels


def phash(image: Image.Image) -> np.ndarray:
    """The 64-bit perceptual hash of an image, as 8 bytes."""
    return np.packbits(imagehash.phash(image).hash.ravel())


def turned(image: Image.Image) -> np.ndarray:
    """The hashes of an image at each quarter turn, (4, 8) uint8: phash of the image turned by
    each of TURNS, bit for bit, from two shrinkings instead of four. A half turn of the shrunk
    pixels is the shrunk half-turned picture (the filter is symmetric), so the 180 and 270 degree
    hashes come from the 0 and 90 degree pixels reversed (1.6 -> 0.75 ms a query with ``mirrored``,
    the same bits for 419 flowers5 and Holidays photos)."""
    return _turned(*_upright_and_quarter(image))


def mirrored(image: Image.Image) -> np.ndarray:
    """The hash of an image's mirror image, 8 bytes: a mirrored copy's lies within a few bits of its
    picture's hash, a copy flipped upside down of its picture's turned half way (``turned``)."""
    return _hash_of(_shrunk(_small_gray(image))[:, ::-1])


@dataclass(frozen=True)
class QueryHashes:
    """An upload's hashes at each quarter turn and of its mirror image (``turned``, ``mirrored``),
    from the same two shrinkings: a search wants both, and shrinking again for the mirror's was
    0.2-0.6 ms of it."""

    turned: np.ndarray  # (4, 8) uint8
    mirrored: np.ndarray  # (8,) uint8


def of_query(image: Image.Image) -> QueryHashes:
    upright, quarter = _upright_and_quarter(image)
    return QueryHashes(_turned(upright, quarter), _hash_of(upright[:, ::-1]))


def _upright_and_quarter(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    small = _small_gray(image)
    return _shrunk(small), _shrunk(small.transpose(Image.Transpose.ROTATE_90))


def _turned(upright: np.ndarray, quarter: np.ndarray) -> np.ndarray:
    return np.stack(
        [_hash_of(pixels) for pixels in (upright, quarter, upright[::-1, ::-1], quarter[::-1, ::-1])]
    )


def _small_gray(image: Image.Image) -> Image.Image:
    small = image.convert("L")
    small.thumbnail((256, 256))
    return small


def _shrunk(gray: Image.Image) -> np.ndarray:
    """The pixels phash reads: the gray picture at 32 x 32 (imagehash's size and filter)."""
    side = HASHED * SHRUNK_PER_BIT
    return np.asarray(gray.resize((side, side), Image.Resampling.LANCZOS), np.float64)


def _hash_of(pixels: np.ndarray) -> np.ndarray:
    """imagehash's phash of shrunk pixels: the lowest 8 x 8 of their DCT above its median."""
    import scipy.fftpack

    lowest = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:HASHED, :HASHED]
    return np.packbits((lowest > np.median(lowest)).ravel())


def distances(hashes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distances (bits) of one hash to each of ``hashes`` ((n, 8) uint8)."""
    stored = np.ascontiguousarray(hashes).view(np.uint64).ravel()
    return np.bitwise_count(stored ^ np.ascontiguousarray(query).reshape(8).view(np.uint64)[0])


def near_pairs(
    hashes: np.ndarray, within: int, rows: Iterable[int] | None = None, largest_bucket: int = 64
) -> set[tuple[int, int]]:
    """Every pair of rows whose hashes lie within ``within`` bits (``within`` < 8) of each other,
    at any quarter turn: ``hashes`` is (n, turns, 8), each row's hash at each turn (the first
    unturned). Only pairs with one of ``rows`` if given (a build's new items). Not all pairs are
    compared: split into 4 blocks of 16 bits, two hashes within 3 bits agree on one block at
    least, within 7 bits lie within 1 bit on one block (multi-index hashing), so only hashes
    whose block lies that near are. A block value more than ``largest_bucket`` hashes share
    (blank pictures) is left out: they cannot verify."""
    assert within < 8, "four blocks of 16 bits, each searched within 1 bit, find pairs within 7 bits"
    stored = np.ascontiguousarray(hashes, np.uint8).reshape(len(hashes), -1, 8)
    present = np.flatnonzero(stored[:, 0].any(axis=1))
    asked = present if rows is None else np.intersect1d(np.fromiter(rows, np.int64), present)
    turns = stored[present].reshape(-1, 8)
    owners = np.repeat(present, stored.shape[1])
    found = _matches(stored[asked, 0], asked, turns, owners, within, largest_bucket)  # mine turned
    asked_turns = np.repeat(asked, stored.shape[1])
    found |= _matches(
        stored[asked].reshape(-1, 8), asked_turns, stored[present, 0], present, within, largest_bucket
    )
    return found


def nearest_of_each(hashes: np.ndarray, pairs: set[tuple[int, int]], per_row: int) -> set[tuple[int, int]]:
    """The pairs (of near_pairs, over the same ``hashes``) where one is among the ``per_row``
    nearest of the other by bits (ties by row): in a collection of flat graphics hundreds of
    pictures lie within a few bits of each other (3,000 squares on plain backgrounds: 28 pairs a
    picture within 7 bits), while a photo's copies are the few nearest."""
    if not pairs:
        return set()
    stored = np.ascontiguousarray(hashes, np.uint8).reshape(len(hashes), -1, 8)
    first, second = np.array(sorted(pairs), np.int64).T
    whole = stored.view(np.uint64)[..., 0]  # (rows, turns)
    bits = np.minimum(
        np.bitwise_count(whole[first] ^ whole[second, :1]).min(axis=1),
        np.bitwise_count(whole[first, :1] ^ whole[second]).min(axis=1),
    )
    kept = ranking.among_the_best(first, second, -bits.astype(np.int64), per_row)
    return {(int(a), int(b)) for a, b in zip(first[kept], second[kept], strict=True)}


def _matches(
    queries: np.ndarray,
    query_rows: np.ndarray,
    hashes: np.ndarray,
    rows: np.ndarray,
    within: int,
    largest: int,
) -> set[tuple[int, int]]:
    """Pairs (query's row, hash's row) of different rows within ``within`` bits, by blocks: each
    query's block values within ``within // 4`` bits looked up among the hashes' sorted ones."""
    found: set[tuple[int, int]] = set()
    hashes, queries = np.ascontiguousarray(hashes), np.ascontiguousarray(queries)
    blocks, asked = hashes.view(np.uint16), queries.view(np.uint16)
    whole, wanted = hashes.view(np.uint64).ravel(), queries.view(np.uint64).ravel()
    for column in range(blocks.shape[1]):
        order = np.argsort(blocks[:, column], kind="stable")
        keys = blocks[order, column]
        for mask in _masks(16, within // 4).astype(np.uint16):
            values = asked[:, column] ^ mask
            starts = np.searchsorted(keys, values, side="left")
            counts = np.searchsorted(keys, values, side="right") - starts
            counts[counts > largest] = 0
            query = np.repeat(np.arange(len(queries)), counts)
            near = order[np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
            close = (rows[near] != query_rows[query]) & (
                np.bitwise_count(whole[near] ^ wanted[query]) <= within
            )
            ends = zip(query_rows[query[close]].tolist(), rows[near[close]].tolist(), strict=True)
            found.update((min(a, b), max(a, b)) for a, b in ends)
    return found


BLOCKS = ((0, 22), (22, 21), (43, 21))  # (first bit, width): 3 blocks suit 10^5-10^7 rows


@functools.cache
def _masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit value with at most ``radius`` bits set: XORed with a block's value,
    the values within ``radius`` bits of it."""
    masks = [
        sum(1 << bit for bit in bits)
        for r in range(radius + 1)
        for bits in itertools.combinations(range(width), r)
    ]
    return np.array(masks, np.uint64)


def _block(values: np.ndarray, first: int, width: int) -> np.ndarray:
    return (values >> np.uint64(first)) & np.uint64((1 << width) - 1)


class HashIndex:
    """Stored hashes found by Hamming distance without comparing every one (multi-index hashing,
    Norouzi, Punjani & Fleet, CVPR 2012): the 64 bits are cut into 3 blocks, and two hashes
    within ``r`` bits agree within ``r // 3`` bits on one block at least, so only the rows whose
    block lies that near the query's are compared. At a million rows a query compares about a
    thousand (about log2(rows) bits a block keeps the buckets near one row each)."""

    def __init__(self, hashes: np.ndarray):
        """``hashes``: (n, 8) uint8; all-zero rows (no hash stored) are never found. Each block
        keeps its values sorted and their rows: 24 bytes a row."""
        self.hashes = np.ascontiguousarray(hashes, np.uint8).reshape(-1, 8)
        self.present = np.flatnonzero(self.hashes.any(axis=1)).astype(np.int64)
        values = self.hashes[self.present].view(np.uint64).ravel()
        blocks = [_block(values, first, width).astype(np.uint32) for first, width in BLOCKS]
        self.orders = [np.argsort(block, kind="stable").astype(np.int32) for block in blocks]
        self.keys = [block[order] for block, order in zip(blocks, self.orders, strict=True)]

    def candidates(self, queries: np.ndarray, within: int) -> np.ndarray:
        """The rows that share a block with one of ``queries`` ((q, 8) uint8) within
        ``within // 3`` bits, in order."""
        values = np.ascontiguousarray(queries, np.uint8).reshape(-1, 8).view(np.uint64).ravel()
        found = []
        for (first, width), keys, order in zip(BLOCKS, self.keys, self.orders, strict=True):
            masks = _masks(width, within // len(BLOCKS))
            near = np.unique((_block(values, first, width)[:, None] ^ masks[None, :]).ravel()).astype(
                np.uint32
            )
            starts, ends = np.searchsorted(keys, near, "left"), np.searchsorted(keys, near, "right")
            lengths = ends - starts
            total = int(lengths.sum())
            if total:
                offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
                found.append(order[offsets + np.arange(total)])
        return np.unique(self.present[np.concatenate(found)]) if found else np.zeros(0, np.int64)

    def near(self, queries: np.ndarray, within: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows within ``within`` bits of any of ``queries`` ((q, 8)) and their distances, nearest
        first (ties by row)."""
        queries = np.ascontiguousarray(queries, np.uint8).reshape(-1, 8)
        rows = self.candidates(queries, within)
        if not len(rows):
            return rows, np.zeros(0, np.int64)
        bits = np.min([distances(self.hashes[rows], q) for q in queries], axis=0)
        keep = bits <= within
        rows, bits = rows[keep], bits[keep]
        order = np.argsort(bits, kind="stable")
        return rows[order], bits[order].astype(np.int64)
