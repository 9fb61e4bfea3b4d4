"""What a build decided before running the network (indexer.plan_build makes it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsim import config
from imgsim.index import store
from imgsim.indexing import collection
from imgsim.indexing.collection import FileEntry
from imgsim.indexing.precision import Choice
from imgsim.live import live
from imgsim.models import embedders


@dataclass
class BuildPlan:
    """Everything a build decided before running the network."""

    cfg: config.Config
    dataset: str
    root: Path
    entries: list[FileEntry]  # what the version will hold, if readable
    key: str  # the model key the vectors are made with
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

    @property
    def previous(self) -> store.Manifest | None:
        return self.current.manifest if self.current else None
