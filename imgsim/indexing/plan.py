"""What a build decided before running the network (indexer.plan_build makes it)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsim import config
from imgsim.index.manifest import Manifest
from imgsim.index.model_key import ModelKey
from imgsim.indexing import collection
from imgsim.indexing.collection import FileEntry
from imgsim.indexing.precision import Choice
from imgsim.live import live
from imgsim.models import embedders


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)  # progress and news go to stderr; results to stdout


@dataclass(frozen=True)
class BuildOptions:
    """How a build runs, beyond the configuration: what img2vec.py's flags and a compaction ask."""

    embedder: embedders.Embedder | None = None  # given: not loaded again (the service's, a test's)
    progress: bool = True  # progress bars; news go to ``log`` either way
    full: bool = False  # re-embed and rewrite everything (--full)
    retrain: bool = False  # train convae/simpleae again (--retrain)
    plot: Path | None = None  # convae/simpleae: a few images and their reconstructions (--plot)
    merge: bool = False  # merge the segments down to the fewest the size limit allows (--merge)
    log: Callable[[str], None] = _to_stderr
    before_publish: Callable[[], None] | None = None  # runs just before `current` moves; may refuse

    @property
    def verbose(self) -> int:
        return 2 if self.progress else 0


@dataclass
class BuildPlan:
    """Everything a build decided before running the network."""

    cfg: config.Config
    dataset: str
    root: Path
    entries: list[FileEntry]  # what the version will hold, if readable
    key: ModelKey  # the model key the vectors are made with
    embedder: embedders.Embedder | None
    unchanged: dict[str, tuple[str, np.ndarray]]  # path -> (sha1, vector) reused as they are
    to_embed: list[FileEntry]
    known_sha1: dict[str, tuple[str, np.ndarray]]  # earlier vectors, reused if the content matches
    ids: dict[str, int]  # the ids files already have (current version and live additions)
    current: collection.Previous | None  # the version this build starts from, read once
    refused: list[tuple[str, str]]  # (path, reason) of files the scan would not take
    live_state: live.LiveState
    live_store: live.LiveStore
    live_read_at: float = 0.0
    removed: int = 0
    up_to_date: bool = False
    before_publish: Callable[[], None] | None = None
    precision: Choice | None = None  # what the vectors are made in, and why
    full: bool = False  # write every item anew (--full): no segment of the version before is kept
    merge: bool = False  # merge segments down to the fewest the size limit allows (--merge)
    # unchanged files a killed run embedded: path -> its checkpoint's local features (folder, row)
    resumed: dict[str, tuple[Path, int]] = field(default_factory=dict)

    @property
    def previous(self) -> Manifest | None:
        return self.current.manifest if self.current else None
