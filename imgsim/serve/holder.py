"""What a worker answers from: the index version it has open and the model for its queries.

IndexHolder follows ``current`` when a rebuild moves it, reopening at most every reload_interval
seconds, and keeps the model loaded while the versions it opens share it. Every request works on
one Snapshot from start to end, whatever happens meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim import config
from imgsim.index import segments
from imgsim.live import live
from imgsim.models import batching, embedders, runtimes
from imgsim.search import annoy_index
from imgsim.serve import metrics


@dataclass(frozen=True)
class Snapshot:
    """One index version and the model that embeds queries for it: what one request uses."""

    index: annoy_index.SearchIndex
    embedder: embedders.Embedder
    link_target: str
    queries: batching.Batcher  # the embedder's network, shared by concurrent queries

    def embed(self, image: Image.Image) -> np.ndarray:
        """An image's vector, from a forward pass shared with concurrent queries."""
        return self.queries.embed(self.embedder.prepare(image))

    def embed_all(self, images: list[Image.Image]) -> np.ndarray:
        """The vectors of a query's variants (tta.py), from passes shared with concurrent queries."""
        return self.queries.embed_all([self.embedder.prepare(image) for image in images])


@dataclass(frozen=True)
class Answer:
    """Search results and where they came from."""

    snap: Snapshot
    view: live.LiveView
    hits: list[annoy_index.Hit]
    query: dict
    more: bool = False  # results beyond these may exist (ask with offset = offset + k)
    truncated: bool = False  # the folder filter may have left out results beyond those examined


class IndexHolder:
    """Keeps the current index (and its model) open, and follows ``current`` when it moves."""

    def __init__(
        self,
        cfg: config.Config,
        embedder: embedders.Embedder | None = None,
        log: Callable[[str], None] = print,
    ):
        self.cfg = cfg
        self.log = log
        self._given_embedder = embedder
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self.load_error: str | None = None
        self._refused: str | None = None  # the link target that failed to open: not tried again

    @property
    def refused(self) -> bool:
        """Whether the version ``current`` names failed its checks (and is not opened again)."""
        return self._refused is not None

    def _link_target(self) -> str | None:
        try:
            return os.readlink(Path(self.cfg.index_dir) / "current")
        except OSError:
            return None

    def _open(self, target: str) -> Snapshot:
        index = annoy_index.open_index(self.cfg.index_dir, check=True)
        old = self._snapshot
        if old is not None and (self._given_embedder or old.embedder.key == index.manifest.model_key):
            return Snapshot(index, old.embedder, target, old.queries)  # the same model: keep it loaded
        embedder = self._given_embedder or embedders.for_index(
            index.manifest, index.version, runtimes.of(self.cfg, self.log)
        )
        queries = batching.Batcher(embedder.embed, self.cfg.query_batch, metrics.query_batch)
        return Snapshot(index, embedder, target, queries)

    def get(self) -> Snapshot | None:
        """The snapshot to answer with; reopens at most every ``reload_interval`` seconds."""
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked_at < self.cfg.reload_interval:
            return self._snapshot
        with self._lock:
            if self._snapshot is not None and now - self._checked_at < self.cfg.reload_interval:
                return self._snapshot
            self._checked_at = now
            target = self._link_target()
            changed = self._snapshot is None or target != self._snapshot.link_target
            if target is not None and changed and target != self._refused:
                try:
                    self._snapshot = self._open(target)
                    self.load_error, self._refused = None, None
                except Exception as error:  # keep serving the old version; say why on /healthz
                    self.load_error = f"{type(error).__name__}: {error}"
                    # a version that failed its checks is not read again every few seconds
                    self._refused = target if isinstance(error, segments.CorruptSegment) else None
            elif target is None and self._snapshot is None:
                self.load_error = "no index built yet: run python img2vec.py FOLDER"
            return self._snapshot
