"""The on-disk layout of an index, and the atomic switch between its versions.

    rsc_files/
      current -> versions/20261123T101500-3f2a     (symlink, replaced atomically)
      versions/20261123T101500-3f2a/
        manifest.json   model, dimensions, metric, trees, counts, timestamps, format version
        items.json      catalogue: row -> {id, path, size, mtime_ns, sha1}
        vectors.npy     float32 embeddings, one row per item, before any reduction
        index.ann       the Annoy index over the (reduced) vectors, row numbers as Annoy ids
        reducer.*       the fitted reducer, if any (see autoencoder.py)
        skipped.json    files that could not be read, with the reason
      .partial/         embeddings of an unfinished run, so that a rerun resumes
      .lock             held by the one rebuild allowed at a time

A version is written completely under ``versions/.building-*`` and renamed into place before
``current`` moves, so a build that fails or is killed leaves the previous version serving.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

FORMAT_VERSION = 1
BUILDING_PREFIX = ".building-"


class IndexMissing(RuntimeError):
    """There is no built index in the index directory yet."""


class BuildInProgress(RuntimeError):
    """Another rebuild holds the lock of this index directory."""


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


def write_json(path: Path, data: object) -> None:
    """Write JSON so that a reader sees either the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> object:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_manifest(version: Path) -> dict:
    return read_json(Path(version) / "manifest.json")


def start_version(index_dir: Path) -> Path:
    """A fresh, empty directory to write a new version into, invisible to readers."""
    name = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)
    path = versions_dir(index_dir) / (BUILDING_PREFIX + name)
    path.mkdir(parents=True)
    return path


def publish(index_dir: Path, building: Path, keep: int = 3) -> Path:
    """Move a finished version into place and point ``current`` at it, atomically."""
    final = building.with_name(building.name.removeprefix(BUILDING_PREFIX))
    os.rename(building, final)
    link = Path(index_dir) / "current"
    tmp_link = link.with_name(f".current-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(os.path.relpath(final, link.parent), tmp_link)
    os.replace(tmp_link, link)
    _fsync_dir(link.parent)
    prune(index_dir, keep)
    return final


def prune(index_dir: Path, keep: int) -> None:
    """Delete unfinished builds and all but the newest ``keep`` old versions."""
    root = versions_dir(index_dir)
    current = Path(index_dir, "current").resolve()
    finished = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    old = [p for p in finished if p != current]
    for path in old[: max(0, len(old) - keep)]:
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(BUILDING_PREFIX + "*"):
        shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
