"""The on-disk layout of an index, and the atomic switch between its versions.

    rsc_files/
      current -> versions/20261123T101500.123456-3f2a   (symlink, replaced atomically)
      versions/20261123T101500.123456-3f2a/
        manifest.json   model, dimensions, metric, trees, counts, timestamps, format version
        segments.json   the segments the version is made of, in row order, each with its tombstones
        segments/NAME/  one immutable segment (index/segments.py), hard-linked from version to version:
          items.json      its items: local row -> Item {id, path, size, mtime_ns, sha1}
          vectors.npy     float32 embeddings, one row per item, before any reduction
          index.ann       the Annoy index over the (reduced) vectors, local rows as Annoy ids
          segment.json    its size and the search depth tuned for it
        reducer.*       the fitted reducer, if any (see autoencoder.py)
        skipped.json    files that could not be read, with the reason
      .partial/         embeddings of an unfinished run, so that a rerun resumes (and the local
                        features found with them, read when the run writes its segments)
      .lock             held by the one rebuild allowed at a time

A version's rows are its segments' live rows (those without a tombstone), one segment after the
other. A segment is written once and never changed: a new version links the segments it keeps
(no copy, no rewrite) and writes only new ones, so a change costs what it changes.

A version is written completely under ``versions/.building-*`` and renamed into place before
``current`` moves, so a build that fails or is killed leaves the previous version serving.
Format 1 (before segments) kept one index at the version's top; it is read as one segment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsim import durable
from imgsim.index import migrate
from imgsim.index.manifest import Manifest

BUILDING_PREFIX = ".building-"
SEGMENTS_FILE = migrate.SEGMENTS_FILE
SEGMENTS_DIR = "segments"
ITEMS_FILE = migrate.ITEMS_FILE
VECTORS_FILE = "vectors.npy"


class IndexMissing(RuntimeError):
    """There is no built index in the index directory yet."""


class BuildInProgress(RuntimeError):
    """Another rebuild holds the lock of this index directory."""


@dataclass(frozen=True, slots=True)
class Item:
    """One indexed image: its id (its identity for good), where it is, and what it was."""

    id: int
    path: str  # relative to the collection root, with forward slashes
    size: int
    mtime_ns: int
    sha1: str


def versions_dir(index_dir: Path) -> Path:
    return Path(index_dir) / "versions"


def partial_dir(index_dir: Path) -> Path:
    return Path(index_dir) / ".partial"


def current_version(index_dir: Path) -> Path:
    """The directory that ``current`` points to, resolved; IndexMissing if there is none."""
    link = Path(index_dir) / "current"
    target = link.resolve() if link.is_symlink() else None
    if target is None or not (target / "manifest.json").is_file():
        raise IndexMissing(f"no index in {index_dir}/ yet: build one with `python img2vec.py FOLDER`")
    return target


def read_manifest(version: Path) -> Manifest:
    return Manifest.from_dict(durable.read_json(Path(version) / "manifest.json"))


def write_manifest(version: Path, manifest: Manifest) -> None:
    durable.write_json(Path(version) / "manifest.json", manifest.to_dict())


@dataclass(frozen=True)
class SegmentRef:
    """One segment of a version: its name, how many items it was written with, and which of its
    local rows the version has deleted (tombstones, dropped when a merge rewrites it)."""

    name: str  # "" = the version's own top folder (format 1)
    count: int
    deleted: tuple[int, ...] = ()

    @property
    def live(self) -> int:
        return self.count - len(self.deleted)

    def to_dict(self) -> dict:
        return {"name": self.name, "count": self.count, "deleted": list(self.deleted)}


def segment_dir(version: Path, name: str) -> Path:
    return Path(version) / SEGMENTS_DIR / name if name else Path(version)


def read_segments(version: Path) -> list[SegmentRef]:
    """A version's segments in row order (a format-1 version's: index/migrate.py)."""
    return [SegmentRef(r["name"], r["count"], tuple(r["deleted"])) for r in migrate.segment_rows(version)]


def write_segments(version: Path, refs: list[SegmentRef]) -> None:
    durable.write_json(Path(version) / SEGMENTS_FILE, [ref.to_dict() for ref in refs])


def live_rows(ref: SegmentRef) -> np.ndarray:
    """The local rows of a segment that its version holds, in order."""
    alive = np.ones(ref.count, bool)
    alive[list(ref.deleted)] = False
    return np.flatnonzero(alive)


_ITEM_CACHE: OrderedDict[tuple, list[Item]] = OrderedDict()
_ITEM_CACHE_SIZE = 64
_ITEM_LOCK = threading.Lock()


def _item_rows(path: Path) -> list[Item]:
    """A segment's items, parsed once per process: a segment never changes, and every version
    that keeps it links the same file (the cache key is the file itself, not its name)."""
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _ITEM_LOCK:
        found = _ITEM_CACHE.get(key)
        if found is not None:
            _ITEM_CACHE.move_to_end(key)
            return found
    found = [Item(**row) for row in durable.read_json(path)]
    with _ITEM_LOCK:
        _ITEM_CACHE[key] = found
        while len(_ITEM_CACHE) > _ITEM_CACHE_SIZE:
            _ITEM_CACHE.popitem(last=False)
    return found


def segment_items(version: Path, ref: SegmentRef) -> list[Item]:
    """Every item a segment was written with (tombstoned ones included), by local row."""
    return _item_rows(segment_dir(version, ref.name) / ITEMS_FILE)


def read_items(version: Path) -> list[Item]:
    """The version's catalogue: row -> Item, over its segments' live rows."""
    return items_of(version, read_segments(version))


def items_of(version: Path, refs: list[SegmentRef]) -> list[Item]:
    """The items of some segments' live rows, one segment after the other."""
    items: list[Item] = []
    for ref in refs:
        written = segment_items(version, ref)
        items.extend(written) if not ref.deleted else items.extend(written[r] for r in live_rows(ref))
    return items


def write_items(folder: Path, items: list[Item]) -> None:
    durable.write_json(Path(folder) / ITEMS_FILE, [dataclasses.asdict(item) for item in items])


def read_vectors(version: Path) -> np.ndarray:
    """The version's full embeddings (before any reduction), one row per item, in memory."""
    parts = []
    for ref in read_segments(version):
        stored = durable.read_array(segment_dir(version, ref.name) / VECTORS_FILE, mapped=True)
        parts.append(np.asarray(stored if not ref.deleted else stored[live_rows(ref)], np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def read_rows(version: Path, rows: np.ndarray) -> np.ndarray:
    """The full embeddings of some of the version's rows (sorted), read from each segment's
    memory-mapped vectors: a sample costs its own rows, not a copy of every vector."""
    wanted = np.asarray(rows, np.int64)
    parts, start = [], 0
    for ref in read_segments(version):
        mine = wanted[(wanted >= start) & (wanted < start + ref.live)] - start
        if len(mine):
            stored = durable.read_array(segment_dir(version, ref.name) / VECTORS_FILE, mapped=True)
            parts.append(np.asarray(stored[live_rows(ref)[mine]], np.float32))
        start += ref.live
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


THUMBS_DIR = "thumbs"  # the service's thumbnails, one per content (sha1), beside the versions


def thumbnail_file(index_dir: Path, sha1: str) -> Path:
    """Where the thumbnail of a file's content is kept (absolute: Flask's send_file reads a
    relative path against the package's folder, not the working one a relative index means)."""
    return Path(index_dir).absolute() / THUMBS_DIR / f"{sha1}.jpg"


def prune_thumbnails(index_dir: Path, kept: set[str]) -> int:
    """Remove the thumbnails of contents (sha1s) not ``kept`` by the version just published (deleted
    or changed files: they were kept for good); one of a later addition is simply made again."""
    gone = 0
    for path in (Path(index_dir) / THUMBS_DIR).glob("*.jpg"):
        if path.stem not in kept:
            path.unlink(missing_ok=True)
            gone += 1
    return gone


MAP_FILE = "map.json"  # the t-SNE map of a version's rows (measure/plots.py), carried by compactions


def start_version(index_dir: Path) -> Path:
    """A fresh, empty directory to write a new version into, invisible to readers. Names sort by
    age (pruning keeps the newest), to the microsecond: compactions can publish several a second."""
    now = time.time()
    name = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}"
    name += "-" + secrets.token_hex(2)
    path = versions_dir(index_dir) / (BUILDING_PREFIX + name)
    path.mkdir(parents=True)
    return path


def publish(index_dir: Path, building: Path, keep: int = 3) -> Path:
    """Move a finished version into place and point ``current`` at it, atomically.

    Every file of the version is on disk before ``current`` can point at it: after a power cut
    ``current`` names either the old version or a complete new one."""
    final = building.with_name(building.name.removeprefix(BUILDING_PREFIX))
    durable.fsync_tree(building)
    os.rename(building, final)
    durable.fsync_dir(final.parent)
    link = Path(index_dir) / "current"
    tmp_link = link.with_name(f".current-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(os.path.relpath(final, link.parent), tmp_link)
    os.replace(tmp_link, link)
    durable.fsync_dir(link.parent)
    prune(index_dir, keep)
    return final


RETIRED_GRACE_S = 180.0  # an old version outlives its replacement by this much at least: a request
# a worker began on it (nginx waits 120 s for an answer) still finds its files


def prune(index_dir: Path, keep: int) -> None:
    """Delete unfinished builds and all but the newest ``keep`` old versions, except those replaced
    less than RETIRED_GRACE_S ago (many compactions a minute once deleted a version that a long
    request was still reading: 500s)."""
    root = versions_dir(index_dir)
    current = Path(index_dir, "current").resolve()
    finished = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    old = [p for p in finished if p != current]
    now = time.time()
    for path in old[: max(0, len(old) - keep)]:
        successor = finished[finished.index(path) + 1]
        try:
            replaced_at = (successor / "manifest.json").stat().st_mtime
        except FileNotFoundError:
            replaced_at = 0.0
        if now - replaced_at >= RETIRED_GRACE_S:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(BUILDING_PREFIX + "*"):
        shutil.rmtree(path, ignore_errors=True)


def clean(index_dir: Path, keep: int) -> None:
    """What a killed run can leave behind, removed at the start of the next one (under the lock):
    unfinished builds, versions beyond ``keep``, and checkpoints that a published version took in."""
    if versions_dir(index_dir).is_dir():
        prune(index_dir, keep)
    try:
        published = (current_version(index_dir) / "manifest.json").stat().st_mtime_ns
    except IndexMissing:
        return
    for chunk in partial_dir(index_dir).glob("chunk-*.npz"):
        if chunk.stat().st_mtime_ns < published:
            chunk.unlink(missing_ok=True)


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index directory's rebuild lock; released by the OS even if the process dies."""
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    lock_path = Path(index_dir) / ".lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BuildInProgress(
                f"another rebuild of {index_dir}/ is running ({holder}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
