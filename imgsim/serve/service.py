"""A worker's service: its parts, each with one job and given what it needs.

    holder     the index version a worker has open and the model for its queries (holder.py)
    catalogue  what a request answers from: that version and the live delta, item by item, files
    searching  decode an upload; search by picture, id, region, several at once (query/pipeline.py)
    ingest     add and remove images while it runs; the background compaction (compaction.py)
    reports    the groups of copies and the map of the whole index
    deciding   decisions about groups of copies: recorded, carried out, undone (deciding.py)
    status     /healthz and /stats

``assemble`` wires them for one configuration: create_app (serve/app.py) per worker, and
``img2vec.py --add/--remove`` (through the same ingest as POST and DELETE /images). The
compaction (indexer.compact) is given to the parts that run it, not imported by them. Refusals are
ServiceErrors with a code (refusals.py); the web layer alone turns codes into HTTP statuses.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from imgsim import config
from imgsim.live import live
from imgsim.models import embedders
from imgsim.serve.catalogue import THUMB_SIDE, Catalogue, Catalogued
from imgsim.serve.compaction import Compact, Compactor
from imgsim.serve.deciding import Deciding
from imgsim.serve.holder import Answer, IndexHolder, Snapshot
from imgsim.serve.ingest import Ingest
from imgsim.serve.refusals import ServiceError
from imgsim.serve.reports import Reports
from imgsim.serve.searching import Searching
from imgsim.serve.status import Status

__all__ = ["THUMB_SIDE", "Answer", "Catalogued", "Service", "ServiceError", "Snapshot", "assemble"]


@dataclass
class Service:
    """One worker's parts, as ``assemble`` wired them."""

    cfg: config.Config
    logger: logging.Logger
    holder: IndexHolder
    live_store: live.LiveStore
    catalogue: Catalogue
    searching: Searching
    ingest: Ingest
    reports: Reports
    deciding: Deciding
    status: Status
    compactor: Compactor | None = None
    counts: Counter[str] = field(default_factory=Counter)  # requests by view, for /stats

    def start(self) -> None:
        """Load the model and index now (in the worker, after the fork) and resume a compaction
        that a crash or restart interrupted, and a trash move or its undoing."""
        self.ingest.resume()
        if self.holder.get() is not None:
            self.deciding.recover()

    def close(self) -> None:
        """Give back the live store's connections (PostgreSQL) at shutdown."""
        self.live_store.close()


def assemble(
    cfg: config.Config,
    compact: Compact | None = None,
    embedder: embedders.Embedder | None = None,
    logger: logging.Logger | None = None,
) -> Service:
    """The parts for ``cfg``, each given its dependencies: with ``compact`` (indexer.compact), the
    worker compacts the live delta in the background; ``embedder`` shares one loaded model (tests)."""
    logger = logger or logging.getLogger("imgsim")
    holder = IndexHolder(cfg, embedder, logger.warning)
    live_store = live.open_store(cfg.index_dir, cfg.live_url)
    catalogue = Catalogue(holder, live.LiveLayer(live_store), cfg)
    compactor = Compactor(cfg, compact, live_store, logger) if compact is not None else None
    counts: Counter[str] = Counter()
    ingest = Ingest(catalogue, live_store, compactor, logger)
    return Service(
        cfg,
        logger,
        holder,
        live_store,
        catalogue,
        Searching(catalogue, cfg),
        ingest,
        Reports(catalogue, live_store.decisions),
        Deciding(catalogue, live_store, ingest, logger),
        Status(holder, compactor, counts),
        compactor,
        counts,
    )
