"""The contract every embedding engine keeps, in one place: the in-process one (local_engine.py)
and Ray's (rayengine.py) take one EmbedJob and give back one EmbedResult.

An engine embeds a job's files: each file's vector by path (a file whose content hash the job
already knows reuses its vector), the files it could not read with the reason, and how long it
took. It reports each outcome to a Collector, which counts it on the progress bar, checkpoints
every ``cfg.checkpoint_every`` new vectors and, however the run ends (finished, interrupted,
failed), saves the vectors not yet saved, so that a rerun resumes from them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from imgsim import config
from imgsim.indexing.collection import FileEntry
from imgsim.models.embedders import Embedder

Done = list[tuple[FileEntry, str, np.ndarray]]  # (file, sha1, vector)
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
    checkpoint: Callable[[Done], None] | None = None
    progress: bool = True
    log: Log = _to_stderr


@dataclass
class EmbedResult:
    vectors: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # path -> (sha1, vector)
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

    def embedded(self, entry: FileEntry, sha1: str, vector: np.ndarray) -> None:
        self.result.vectors[entry.path] = (sha1, vector)
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
            self.job.checkpoint(list(self.unsaved))
        self.unsaved.clear()


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
