"""Segments: the immutable pieces a version is made of, written once and searched together.

As in Lucene, an index that changes is a list of immutable segments instead of one structure
rewritten on every change: a change writes one new small segment, deletions are tombstones on the
segments they hit, and a merge policy (merge_policy.py) now and then rewrites a few segments of
similar size into one. Each segment is an Annoy file with its vectors and items, memory-mapped and
shared by every worker; a query searches every segment in threads (Annoy releases the GIL) and
merges the answers by distance. The depth is shared by size (SHARE): a segment holding a quarter
of the items needs to find only its part of the nearest, not its own ten.

``Segments`` offers the part of AnnoyIndex that the rest of imgsim uses, over a version's rows.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from imgsim import config, durable
from imgsim.index import migrate, store
from imgsim.index import vectors as vector_math
from imgsim.index.depth import DEFAULT_SEARCH_K, EXACT_SEARCH_K, TUNED, Depth, from_search_k

SEGMENT_FILE = migrate.SEGMENT_FILE
ANNOY_FILE = "index.ann"
EXACT_FILE = "index_vectors.npy"  # a small segment's vectors as Annoy holds them, for exact search
EXACT_FILE_ITEMS = 20_000  # segments up to this size keep them (exact search beats Annoy there)
# in those searched exactly (a copy is among an item's very nearest: candidates need no more)
SHARE = 2.0  # a segment is searched at its tuned depth (or Annoy's own) times SHARE x its share of
# the live items, at most 1: at 1M stand-ins in four segments of 250,000 (200 edited queries, the
# AMD EPYC; docs/scaling.md), recall@10 0.990 at full depth in each (p50 28.0 ms), 0.985 at half
# (20.3 ms), 0.974 at a quarter (13.2 ms)


def new_name() -> str:
    """A name no other segment of any index has (time first, so that names sort by age)."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(4).hex()


def build_annoy(vectors: np.ndarray, path: Path, metric: config.Metric = "angular", trees: int = 100) -> None:
    """Build an Annoy index with row numbers as item ids and save it to ``path``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    index = AnnoyIndex(vectors.shape[1], metric)
    index.set_seed(42)
    for row, vector in enumerate(vectors):
        index.add_item(row, vector)
    index.build(trees, n_jobs=-1)
    index.save(str(path))
    index.unload()


def write(
    folder: Path,
    items: list[store.Item],
    vectors: np.ndarray,
    index_vectors: np.ndarray,
    metric: config.Metric,
    trees: int,
    annoy: bool = True,
) -> float:
    """Write one segment's items, vectors and (unless ``annoy`` is False: built elsewhere) its
    Annoy index; the seconds Annoy took to build."""
    folder.mkdir(parents=True, exist_ok=True)
    store.write_items(folder, items)
    np.save(folder / store.VECTORS_FILE, np.asarray(vectors, np.float32))
    if len(items) <= EXACT_FILE_ITEMS:
        np.save(folder / EXACT_FILE, np.asarray(index_vectors, np.float32))
    if not annoy:
        return 0.0
    began = time.perf_counter()
    build_annoy(index_vectors, folder / ANNOY_FILE, metric, trees)
    return time.perf_counter() - began


def keep_for_exact_search(folder: Path, index_vectors: np.ndarray, search_k: int) -> None:
    """A segment searched exactly keeps its vectors as Annoy holds them (not read back from Annoy
    one row at a time by every worker)."""
    if search_k == EXACT_SEARCH_K and not (folder / EXACT_FILE).is_file():
        np.save(folder / EXACT_FILE, np.asarray(index_vectors, np.float32))


def describe(folder: Path, count: int, search_k: int, recall: dict | None = None, **facts) -> None:
    """Write what queries need to know of a segment, last: its depth, what it was chosen from, and
    the size and SHA-1 of each of its files, which a serving worker checks before mapping them."""
    files = {
        path.name: {"size": path.stat().st_size, "sha1": durable.file_sha1(path)}
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != SEGMENT_FILE
    }
    body = {"count": count, "search_k": search_k, "recall": recall or {}} | facts | {"files": files}
    durable.write_json(folder / SEGMENT_FILE, body)


class CorruptSegment(RuntimeError):
    """A segment's file is not what its build wrote: the version is refused, never served."""


_SOUND: set[tuple[int, int, int]] = set()  # segment.json files (linked across versions) checked
_SOUND_LOCK = threading.Lock()


def check_files(folder: Path) -> None:
    """Every file of a segment as its build recorded it (size and SHA-1), once per process for each
    segment (a flipped block in index.ann gave wrong neighbours, a truncated one crashed Annoy).
    Segments written before their files were recorded are taken as they are (index/migrate.py)."""
    try:
        seen = (folder / SEGMENT_FILE).stat()
    except FileNotFoundError:  # a format-1 version's folder: nothing recorded to check
        return
    key = (seen.st_dev, seen.st_ino, seen.st_mtime_ns)
    with _SOUND_LOCK:
        if key in _SOUND:  # checked in this process already: not even its description read again
            return
    recorded = migrate.segment_files(folder)
    if recorded is None:
        return
    for name, expected in recorded.items():
        path = folder / name
        size = path.stat().st_size if path.is_file() else -1
        if size != expected["size"]:
            raise CorruptSegment(f"{path} has {size:,} bytes, its build wrote {expected['size']:,}: rebuild")
        if durable.file_sha1(path) != expected["sha1"]:
            raise CorruptSegment(f"{path} is not the file its build wrote (SHA-1 differs): rebuild")
    with _SOUND_LOCK:
        _SOUND.add(key)


def depth_of(folder: Path, default: int) -> int:
    """The search_k tuned for a segment (a format-1 version's: the manifest's, ``default``)."""
    return migrate.segment_depth(folder, default)


@dataclass
class Opened:
    """One segment of a version, opened: its Annoy file mapped, its live rows and their place."""

    folder: Path
    ref: store.SegmentRef
    annoy: AnnoyIndex
    search_k: int
    start: int  # the version's row of this segment's first live row
    local: np.ndarray  # version row - start -> local row
    global_of: np.ndarray  # local row -> version row, -1 where deleted
    _matrix: np.ndarray | None = field(default=None, repr=False)
    _norms: np.ndarray | None = field(default=None, repr=False)
    _raw: np.ndarray | None = field(default=None, repr=False)

    def matrix(self, metric: config.Metric) -> tuple[np.ndarray, np.ndarray | None]:
        """The segment's vectors as Annoy holds them, for exact search (read once)."""
        if self._matrix is None:
            path = self.folder / EXACT_FILE
            if path.is_file():
                self._matrix = durable.read_array(path, mapped=True)
            else:  # asked for exact search where the build chose Annoy: read back once, row by row
                self._matrix = np.empty((self.ref.count, self.annoy.f), np.float32)
                for row in range(self.ref.count):
                    self._matrix[row] = self.annoy.get_item_vector(row)
            self._norms = vector_math.row_norms(self._matrix) if metric == "angular" else None
        return self._matrix, self._norms

    def nearest(
        self, vector: np.ndarray, k: int, asked: Depth, metric: config.Metric, trees: int, share: float = 1.0
    ):
        """Version rows and distances of this segment's k nearest live items; ``share``: the part of
        the tuned depth (or of Annoy's own) that it is searched at (Segments.nearest)."""
        depth = asked.search_k(tuned=self.search_k)
        if depth == EXACT_SEARCH_K:
            matrix, norms = self.matrix(metric)
            found = vector_math.distances(matrix, vector, metric, norms)
            if self.ref.deleted:
                found[list(self.ref.deleted)] = np.inf
            best = vector_math.smallest(found, min(k, self.ref.live))
            return self.global_of[best].tolist(), found[best].tolist()
        wanted = min(self.ref.count, k if not self.ref.deleted else 2 * k + 8)
        as_list = vector.tolist()
        counted = share if asked.how != "nodes" else 1.0  # a count of nodes asked for is kept as it is
        while True:  # tombstoned rows take places in Annoy's answer: ask for more until k are live
            # a long list needs more depth than a short one
            deep = _shared(depth, trees * wanted, counted)
            local, distances = self.annoy.get_nns_by_vector(
                as_list, wanted, search_k=deep, include_distances=True
            )
            rows = self.global_of[np.asarray(local, np.int64)] if local else np.zeros(0, np.int64)
            keep = rows >= 0
            if keep.sum() >= min(k, self.ref.live) or wanted >= self.ref.count:
                return rows[keep][:k].tolist(), np.asarray(distances, np.float64)[keep][:k].tolist()
            wanted = min(self.ref.count, 4 * wanted)


def _shared(depth: int, least: int, share: float) -> int:
    """The search_k of a segment searched at ``share`` of ``depth`` (DEFAULT_SEARCH_K: of Annoy's own,
    ``least`` = trees x the items wanted), never below ``least`` x ``share``."""
    full = least if depth == DEFAULT_SEARCH_K else max(depth, least)
    if share >= 1.0:
        return depth if depth == DEFAULT_SEARCH_K else full
    return max(1, round(full * share))


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that search segments side by side, made in the process that uses them (a
    gunicorn worker forks after the master loaded the app: threads do not survive a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)))
        return _POOL[1]


class Segments:
    """A version's segments searched as one index over the version's rows (AnnoyIndex's calls)."""

    def __init__(
        self,
        version: Path,
        dims: int,
        metric: config.Metric,
        trees: int,
        default_depth: int = -1,
        check: bool = False,
    ):
        self.f, self.metric, self.trees = dims, metric, trees
        self.parts: list[Opened] = []
        start = 0
        for ref in store.read_segments(version):
            folder = store.segment_dir(version, ref.name)
            if check:  # a serving worker: never map a file that is not what its build wrote
                check_files(folder)
            annoy = AnnoyIndex(dims, metric)
            annoy.load(str(folder / ANNOY_FILE), prefault=False)
            local = store.live_rows(ref)
            global_of = np.full(ref.count, -1, np.int64)
            global_of[local] = np.arange(start, start + len(local))
            depth = depth_of(folder, default_depth)
            self.parts.append(Opened(folder, ref, annoy, depth, start, local, global_of))
            start += len(local)
        self.starts = np.array([p.start for p in self.parts], np.int64)
        self.count = start

    def get_n_items(self) -> int:
        return self.count

    def _part(self, row: int) -> tuple[Opened, int]:
        if not 0 <= row < self.count:
            raise IndexError(f"row {row} out of range")
        part = self.parts[int(np.searchsorted(self.starts, row, side="right")) - 1]
        return part, int(part.local[row - part.start])

    def get_item_vector(self, row: int) -> list[float]:
        part, local = self._part(row)
        return part.annoy.get_item_vector(local)

    def raw_vector(self, row: int) -> np.ndarray:
        """A row's full embedding as the network gave it (before centring or reduction), read from
        its segment's memory-mapped vectors: match labels compare those (models/reference.py)."""
        part, local = self._part(row)
        if part._raw is None:  # a plain array over the mapped bytes: a memmap's indexing runs Python
            # code (a search's shortlist reads 40 rows: 0.13 -> 0.08 ms)
            part._raw = np.asarray(durable.read_array(part.folder / store.VECTORS_FILE, mapped=True))
        return np.asarray(part._raw[local], np.float32)

    def nearest(self, vector: np.ndarray, k: int, depth: Depth = TUNED) -> tuple[list[int], list[float]]:
        """The version rows and distances of the k nearest items over every segment."""
        vector = np.asarray(vector, np.float32)

        parts = [p for p in self.parts if p.ref.live]
        live_items = sum(p.ref.live for p in parts)

        def search(part):
            share = min(1.0, SHARE * part.ref.live / live_items)
            return part.nearest(vector, k, depth, self.metric, self.trees, share)

        answers = list(_pool().map(search, parts)) if len(parts) > 1 else [search(p) for p in parts]
        merged = sorted(
            ((d, r) for rows, distances in answers for r, d in zip(rows, distances, strict=True)),
        )[:k]
        return [r for _, r in merged], [d for d, _ in merged]

    def get_nns_by_vector(self, vector, n: int, search_k: int = -1, include_distances: bool = False):
        """As AnnoyIndex's, search_k -1 being each segment's tuned depth and 0 exact search."""
        rows, distances = self.nearest(np.asarray(vector, np.float32), n, from_search_k(search_k))
        return (rows, distances) if include_distances else rows

    def get_nns_by_item(self, row: int, n: int, search_k: int = -1, include_distances: bool = False):
        return self.get_nns_by_vector(self.get_item_vector(row), n, search_k, include_distances)

    def unload(self) -> None:
        for part in self.parts:
            part.annoy.unload()
