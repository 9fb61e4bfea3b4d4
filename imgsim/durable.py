"""Files that survive a crash: atomic replacement, forced to disk, hard-linked trees, checksums.

Every layer writes through these (an index version, a converted model, an upload, a checkpoint), so
they sit at the bottom, under everything but the configuration.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def atomic_write(path: Path, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Write a file so that readers see either the old one or the whole new one, never a part.

    ``durable`` also forces the bytes to disk before the rename, and the rename itself (the folder)
    after it, for data that is acknowledged: after a power cut, the file is there whole or the
    request was never answered. The temporary name is unique per process and thread, so
    concurrent writers never collide.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json(path: Path, data: object) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


_ARRAY_HEADER_LOCK = threading.Lock()


def read_array(path: Path, mapped: bool = False) -> np.ndarray:
    """A stored .npy array (``mapped``: memory-mapped read-only, nothing read into memory yet).

    One thread at a time opens one: numpy parses each header with ast.literal_eval, which CPython
    3.11.7 cannot run in two threads at once (SystemError "AST constructor recursion depth
    mismatch": a search thread and another failed a clean-clone CI run once). Searches, requests
    and a compaction's thread open arrays side by side."""
    with _ARRAY_HEADER_LOCK:
        return np.load(path, mmap_mode="r" if mapped else None)


def link_tree(source: Path, target: Path) -> None:
    """Give ``target`` the files of ``source`` by hard links (the same bytes, nothing copied);
    a copy where the file system cannot link."""
    target.mkdir(parents=True, exist_ok=True)
    for path in Path(source).iterdir():
        if path.is_dir():
            link_tree(path, target / path.name)
            continue
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_tree(folder: Path) -> None:
    """Force every file under ``folder`` and every folder in it to disk."""
    for parent, _, names in os.walk(folder):
        for name in names:
            with open(Path(parent, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(parent))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutsideRoot(ValueError):
    """The file opened lies outside the folder it was asked under (a link out of it)."""


def open_inside(root: Path, path: Path) -> BinaryIO:
    """``path`` opened for reading, checked to be a regular file inside ``root`` *as opened*: the
    open descriptor is what is checked and what the caller reads, so a file swapped for a link
    between a check and a read cannot send another file's bytes (links inside ``root`` are fine).
    Raises FileNotFoundError, OutsideRoot, or IsADirectoryError for anything not a regular file."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens, then is refused
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        if not _opened_path(descriptor).is_relative_to(Path(root).resolve()):
            raise OutsideRoot(f"{path} lies outside {root}")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _opened_path(descriptor: int) -> Path:
    """Where an open file lies, as the kernel says (/proc/self/fd); where it cannot say, nowhere
    that could be inside: the file is refused rather than served unchecked."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{descriptor}"))
    except OSError:
        raise OutsideRoot("cannot tell where an open file lies on this system") from None
