"""The contract every embedding engine keeps, in one place: the in-process one (local_engine.py)
and Ray's (rayengine.py) take one EmbedJob and give back one EmbedResult.

An engine embeds a job's files: each file's vector by path (a file whose content hash the job
already knows reuses its vector), the files it could not read with the reason, and how long it
took. It reports each outcome to a Collector, which counts it on the progress bar, checkpoints
every ``cfg.checkpoint_every`` new vectors and, however the run ends (finished, interrupted,
failed), saves the vectors not yet saved, so that a rerun resumes from them. A saved vector is
read back from its checkpoint as it is asked for (Vectors): a first build holds no more vectors in
memory than a checkpoint's, whatever the collection's size (5 GB at 1M x 1280-d before).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from imgsim import config, durable
from imgsim.images import geometry, imaging
from imgsim.index import keypoints
from imgsim.indexing.collection import FileEntry, features_folder
from imgsim.models.embedders import Embedder

Done = list[tuple[FileEntry, str, np.ndarray]]  # (file, sha1, vector)
K = TypeVar("K")  # what a cache of open files holds (Vectors._kept_open)
Log = Callable[[str], None]


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class EmbedJob:
    """What to embed, with what, and where progress goes."""

    entries: list[FileEntry]
    embedder: Embedder
    cfg: config.Config
    root: str  # the collection's folder: the Ray engine's actors read files relative to it
    known_sha1: dict[str, tuple[str, np.ndarray]]  # path -> (sha1, vector) of the version before
    checkpoint: Callable[[Done], Path | None] | None = None  # saves; where the vectors went (a file)
    progress: bool = True
    log: Log = _to_stderr


class Vectors(MutableMapping[str, tuple[str, np.ndarray]]):
    """Path -> (sha1, vector), as a dict, but for the vectors saved to a checkpoint file: those are
    read back from it as asked for (the file mapped, the last MAPPED files kept open), so that a
    build's memory holds one checkpoint's vectors, not the collection's."""

    MAPPED = 8  # checkpoint files kept open at once: a build reads its vectors back in about the order
    # they were made (a segment's items are in the collection's order, as the files were embedded)

    def __init__(self, held: dict[str, tuple[str, np.ndarray]] | None = None):
        self.held: dict[str, tuple[str, np.ndarray]] = dict(held or {})
        self.saved: dict[str, tuple[str, Path, int]] = {}  # path -> (sha1, checkpoint file, row)
        self.opened: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.found: dict[str, geometry.Features] = {}  # local features found while embedding, unsaved
        self.found_opened: OrderedDict[Path, keypoints.Keypoints] = OrderedDict()
        self.lock = threading.Lock()  # over both caches of open files: features are read in threads

    def keep_in(self, paths: list[str], file: Path) -> None:
        """The vectors of ``paths`` were saved to ``file`` in that order (their local features, if
        found, to ``features_folder(file)``): read them from there."""
        for row, path in enumerate(paths):
            sha1, _ = self.held.pop(path)
            self.saved[path] = (sha1, file, row)
            self.found.pop(path, None)

    def features_of(self, path: str) -> geometry.Features | None:
        """A file's local features found where this run decoded it for its vector (either engine,
        or choosing the precision), None if they were not: then found_features looks in a killed
        run's checkpoints, and else its segment's writing finds them."""
        if path in self.found:
            return self.found[path]
        if path not in self.saved:
            return None
        _, file, row = self.saved[path]
        return self.features_in(features_folder(file), row)

    def features_in(self, folder: Path, row: int) -> geometry.Features | None:
        """A checkpoint's features of one of its rows (None: it kept none)."""
        if folder not in self.found_opened and not folder.is_dir():
            return None
        return self._kept_open(self.found_opened, folder, keypoints.Keypoints).get(row)

    def _kept_open(self, opened: OrderedDict[Path, K], key: Path, open_it: Callable[[Path], K]) -> K:
        """``opened[key]``, opened with ``open_it`` the first time, the last MAPPED kept open; by one
        thread at a time (a segment's features are gathered in threads: two that opened and
        evicted at once lost each other's, a KeyError in a resumed build)."""
        with self.lock:
            if key in opened:
                opened.move_to_end(key)
            else:
                opened[key] = open_it(key)
                if len(opened) > self.MAPPED:
                    opened.popitem(last=False)
            return opened[key]

    def sha1s(self) -> dict[str, str]:
        """Each path's content hash, without reading a vector."""
        return {path: sha1 for path, (sha1, _) in self.held.items()} | {
            path: sha1 for path, (sha1, _, _) in self.saved.items()
        }

    def _rows_of(self, file: Path) -> np.ndarray:
        return self._kept_open(self.opened, file, lambda path: durable.read_array(path, mapped=True))

    def __getitem__(self, path: str) -> tuple[str, np.ndarray]:
        if path in self.held:
            return self.held[path]
        sha1, file, row = self.saved[path]
        return sha1, np.array(self._rows_of(file)[row])

    def __setitem__(self, path: str, value: tuple[str, np.ndarray]) -> None:
        self.saved.pop(path, None)
        self.found.pop(path, None)
        self.held[path] = value

    def __delitem__(self, path: str) -> None:
        self.found.pop(path, None)
        if self.held.pop(path, None) is None:
            del self.saved[path]

    def __iter__(self) -> Iterator[str]:
        yield from self.held
        yield from self.saved

    def __len__(self) -> int:
        return len(self.held) + len(self.saved)

    def __contains__(self, path: object) -> bool:
        return path in self.held or path in self.saved


def found_features(
    vectors: Vectors, resumed: dict[str, tuple[Path, int]]
) -> Callable[[str], geometry.Features | None]:
    """A build's local features found where its files were decoded: by this run (``vectors``), or
    by the killed run it resumes (``resumed``: path -> its checkpoint's features, folder and row)."""

    def of(path: str) -> geometry.Features | None:
        found = vectors.features_of(path)
        if found is None and path in resumed:
            found = vectors.features_in(*resumed[path])
        return found

    return of


def local_features(data: bytes, decoded: Image.Image, max_pixels: int) -> geometry.Features | None:
    """A file's local features as the build stores them (pair_evidence.features_of: its picture
    decoded at geometry.ANALYSED_SIDE), found where an engine decodes it (``data``) for the network
    (``decoded``), from that picture where it can stand for the other (imaging.shrunk_as_decoded):
    a camera JPEG is decoded once, not again when its segment is written. None: left to that."""
    try:
        picture = imaging.shrunk_as_decoded(decoded, data, geometry.ANALYSED_SIDE)
        if picture is None:
            picture = imaging.decode_rgb(data, max_pixels, geometry.ANALYSED_SIDE)
    except (imaging.UnreadableImage, OSError, ValueError, SyntaxError):  # a header read anew
        return None
    return geometry.features(picture)


@dataclass
class EmbedResult:
    vectors: Vectors = field(default_factory=Vectors)  # path -> (sha1, vector)
    embedded: int = 0  # run through the network (the rest reused a vector by content hash)
    measured: int = 0  # of those, embedded while choosing the precision (not in ``seconds``)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    engine: str = "local"  # or "ray", with how many actors on how many nodes
    actors: int = 0
    nodes: int = 1
    warmup_seconds: float = 0.0  # until the first vectors came back (cluster start, model loads)


class Collector:
    """Where an engine reports each file: into the result, the progress bar and the checkpoints."""

    def __init__(self, job: EmbedJob, result: EmbedResult, bar):
        self.job, self.result, self.bar = job, result, bar
        self.unsaved: Done = []

    def embedded(
        self, entry: FileEntry, sha1: str, vector: np.ndarray, found: geometry.Features | None = None
    ) -> None:
        """A file's vector, and its local features where the engine found them as it decoded it."""
        self.result.vectors[entry.path] = (sha1, vector)
        if found is not None:
            self.result.vectors.found[entry.path] = found
        self.result.embedded += 1
        self.unsaved.append((entry, sha1, vector))
        self.bar.update(1)

    def reused(self, path: str, sha1: str) -> None:
        """A file whose content the version before embedded: its vector again."""
        self.result.vectors[path] = (sha1, self.job.known_sha1[path][1])
        self.bar.update(1)

    def skipped(self, path: str, reason: str) -> None:
        self.result.skipped.append((path, reason))
        self.bar.update(1)
        self.bar.write(f"skipped {path}: {reason}", file=sys.stderr)

    def checkpoint(self) -> None:
        """Save the new vectors once there are enough of them (call between batches)."""
        if len(self.unsaved) >= self.job.cfg.checkpoint_every:
            self.save()

    def save(self) -> None:
        if self.job.checkpoint is not None and self.unsaved:
            file = self.job.checkpoint(list(self.unsaved))
            if file is not None:  # read back from there: memory holds one checkpoint's vectors
                paths = [entry.path for entry, _, _ in self.unsaved]
                found = [self.result.vectors.found.get(path) for path in paths]
                if all(features is not None for features in found):  # and their features beside them
                    _save_features(features_folder(file), found)
                self.result.vectors.keep_in(paths, file)
        self.unsaved.clear()


def _save_features(folder: Path, found: list) -> None:
    """A checkpoint's local features, written beside it under another name and renamed into place
    whole: a run killed while writing them (just after its chunk was saved) left a folder of
    half-written files that the resumed run read, and failed on."""
    writing = folder.with_name(folder.name + ".writing")
    shutil.rmtree(writing, ignore_errors=True)
    writing.mkdir()
    keypoints.save(writing, found)
    shutil.rmtree(folder, ignore_errors=True)  # a killed run's, of a chunk saved again under its number
    os.replace(writing, folder)


@contextlib.contextmanager
def collecting(job: EmbedJob, result: EmbedResult, desc: str) -> Iterator[Collector]:
    """A Collector for one run, its bar closed and its last vectors saved however the run ends."""
    from tqdm import tqdm

    bar = tqdm(total=len(job.entries), unit="img", desc=desc, disable=not job.progress, smoothing=0.1)
    collector = Collector(job, result, bar)
    try:
        yield collector
    except KeyboardInterrupt:
        collector.save()
        print(f"\nInterrupted: {len(result.vectors)} embeddings saved; rerun to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
        collector.save()
