"""Every item's local features (images/geometry.py), stored once per segment, memory-mapped.

Verifying a search's candidates must not decode their files: the build computes each image's ORB
keypoints once, when its segment is written (a merge copies those of the segments it merges), and
keeps them in five flat arrays beside the segment's Annoy file, which every worker maps and
shares as it does that file.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from imgsim import durable
from imgsim.images import geometry, hashing
from imgsim.index import migrate, store

OFFSETS, POINTS, DESCRIPTORS, SIZES, GRAY, HASHES = (
    "kp_offsets.npy",
    "kp_points.npy",
    "kp_descriptors.npy",
    migrate.FEATURE_SIZES_FILE,
    "kp_gray.npy",
    migrate.HASHES_FILE,
)
NO_HASH = np.zeros((len(hashing.TURNS), 8), np.uint8)  # an unreadable file's: never near


def save(folder: Path, found: list[geometry.Features | None]) -> None:
    """Write the features of every row (None: an unreadable file, stored as no keypoints)."""
    counts = [0 if f is None else len(f.points) for f in found]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    present = [f for f in found if f is not None and len(f.points)]
    points = np.concatenate([f.points for f in present]) if present else np.zeros((0, 2), np.float32)
    descriptors = np.concatenate([f.descriptors for f in present]) if present else np.zeros((0, 32), np.uint8)
    sizes = np.array([(0, 0) if f is None else f.size for f in found], np.int32).reshape(-1, 2)
    gray = np.array([f is not None and f.gray for f in found], bool)
    hashes = np.array([NO_HASH if f is None or f.phash is None else f.phash for f in found], np.uint8)
    hashes = hashes.reshape(-1, *NO_HASH.shape)
    for name, array in (
        (OFFSETS, offsets),
        (POINTS, points.astype(np.float32)),
        (DESCRIPTORS, descriptors),
        (SIZES, sizes),
        (GRAY, gray),
        (HASHES, hashes),
    ):
        np.save(folder / name, array)


_HEADER = np.dtype([("count", "<i8"), ("width", "<i4"), ("height", "<i4"), ("gray", "?"), ("hashed", "?")])


def packed(found: geometry.Features) -> bytes:
    """One picture's features as bytes: what a Ray actor sends back beside its vector."""
    header = np.array([(len(found.points), *found.size, found.gray, found.phash is not None)], _HEADER)
    phash = NO_HASH if found.phash is None else found.phash
    parts = (header, np.asarray(phash, np.uint8), found.points.astype(np.float32), found.descriptors)
    return b"".join(np.ascontiguousarray(part).tobytes() for part in parts)


def unpacked(blob: bytes) -> geometry.Features:
    """The features ``packed`` made."""
    header = np.frombuffer(blob, _HEADER, count=1)[0]
    count, at = int(header["count"]), _HEADER.itemsize
    phash = np.frombuffer(blob, np.uint8, NO_HASH.size, at).reshape(NO_HASH.shape).copy()
    at += NO_HASH.size
    points = np.frombuffer(blob, np.float32, 2 * count, at).reshape(count, 2).copy()
    descriptors = np.frombuffer(blob, np.uint8, 32 * count, at + 8 * count).reshape(count, 32).copy()
    size = (int(header["width"]), int(header["height"]))
    return geometry.Features(
        points, descriptors, size, bool(header["gray"]), phash if header["hashed"] else None
    )


def _mapped(folder: Path, name: str) -> np.ndarray:
    """A stored array, memory-mapped, as a plain ndarray over the mapped bytes: numpy's memmap
    runs Python code for every index and slice (a search reads about 50 candidates' features, 550
    of them: about 1 ms of a search under the profiler)."""
    return np.asarray(durable.read_array(folder / name, mapped=True))


def _spans(found: Keypoints, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of a segment's ``rows`` starts in its flat arrays, and how many keypoints it has."""
    offsets = np.asarray(found.offsets)
    starts = offsets[rows]
    return starts, offsets[np.asarray(rows) + 1] - starts


def _no_hashes(count: int) -> np.ndarray:
    return np.zeros((count, *NO_HASH.shape), np.uint8)


class Keypoints:
    """The stored features of one segment, by local row."""

    def __init__(self, folder: Path):
        load = functools.partial(_mapped, folder)
        self.offsets, self.points, self.descriptors = load(OFFSETS), load(POINTS), load(DESCRIPTORS)
        self.sizes, self.gray = load(SIZES), load(GRAY)
        self.hashes = load(HASHES) if migrate.has_hashes(folder) else None

    def __len__(self) -> int:
        return len(self.sizes)

    def get(self, row: int) -> geometry.Features | None:
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        width, height = (int(v) for v in self.sizes[row])
        if not width:
            return None
        points, descriptors = np.array(self.points[start:end]), np.array(self.descriptors[start:end])
        phash = None if self.hashes is None else np.array(self.hashes[row])
        return geometry.Features(points, descriptors, (width, height), bool(self.gray[row]), phash)


class VersionKeypoints:
    """The stored features of a version, by the version's row, over its segments."""

    def __init__(self, parts: list[tuple[Keypoints, np.ndarray]]):
        self.parts = parts  # each segment's features and its live local rows
        self.starts = np.cumsum([0] + [len(rows) for _, rows in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def get(self, row: int) -> geometry.Features | None:
        part = int(np.searchsorted(self.starts, row, side="right")) - 1
        found, rows = self.parts[part]
        return found.get(int(rows[row - self.starts[part]]))

    def descriptor_count(self) -> int:
        """How many descriptors the version's rows hold, without reading them."""
        return sum(int(_spans(kp, rows)[1].sum()) for kp, rows in self.parts)

    def all_descriptors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's descriptors, (n, 32) uint8, and the row of each, (n,) int64: what
        images/shared_features.py looks for shared words in (32 bytes a keypoint, read once)."""
        found, owners = [], []
        for part, (kp, rows) in enumerate(self.parts):
            starts, counts = _spans(kp, rows)
            picked = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
            found.append(np.asarray(kp.descriptors)[picked])
            owners.append(np.repeat(np.arange(len(rows)) + self.starts[part], counts))
        if not found:
            return np.zeros((0, 32), np.uint8), np.zeros(0, np.int64)
        return np.concatenate(found), np.concatenate(owners).astype(np.int64)

    @functools.cached_property
    def hashes(self) -> np.ndarray:
        """Every row's perceptual hash at each quarter turn, (rows, 4, 8) uint8, NO_HASH where its
        segment has none."""
        return np.concatenate(
            [
                _no_hashes(len(rows)) if kp.hashes is None else np.asarray(kp.hashes)[rows]
                for kp, rows in self.parts
            ]
            or [_no_hashes(0)]
        )

    def nearest_by_hash(self, queries: np.ndarray, within: int, limit: int) -> list[int]:
        """Rows whose hash lies within ``within`` bits of any of ``queries`` ((q, 8): the query at
        each turn), nearest first, at most ``limit``."""
        rows, _ = self.hash_index.near(queries, within)
        return [int(row) for row in rows[:limit]]

    @functools.cached_property
    def hash_index(self) -> hashing.HashIndex:
        """The unturned hashes, indexed by blocks: an upload compares a few rows, not every one."""
        return hashing.HashIndex(self.hashes[:, 0])


def load(version: Path | None) -> VersionKeypoints | None:
    """A version's stored features, or None for one built without them."""
    if version is None:
        return None
    parts = []
    for ref in store.read_segments(version):
        folder = store.segment_dir(version, ref.name)
        if not migrate.has_features(folder):
            return None
        parts.append((Keypoints(folder), store.live_rows(ref)))
    return VersionKeypoints(parts)
