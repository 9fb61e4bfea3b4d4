"""Writing the live delta into the index in the background once it is large (a compaction).

A compaction takes the current catalogue as it is (no scan of the collection), writes the live
additions as one new segment and the deletions as tombstones (indexing/segment_layout.py), so its cost
is that of the delta; the merge policy may then merge small segments.

The compaction itself (indexer.compact, its own entry point) is handed in, as the parts of the
service are given what they need; only one compaction runs at a time across workers and replicas
(the live store's lock), and the version it started from must still be current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from imgsim import config
from imgsim.images import imaging
from imgsim.index import store
from imgsim.indexing.plan import BuildOptions
from imgsim.live import live
from imgsim.models import embedders
from imgsim.search import annoy_index
from imgsim.serve import metrics

MAX_BACKOFF_S = 600.0


class LockLost(RuntimeError):
    """The compaction's lock went with its database connection while it ran."""


Compact = Callable[[config.Config, BuildOptions, live.LiveStore], object]  # indexer.compact


class Serving(Protocol):
    """What a compaction needs of the version being served (service.Snapshot)."""

    @property
    def index(self) -> annoy_index.SearchIndex: ...

    @property
    def embedder(self) -> embedders.Embedder: ...


class Compactor:
    """Rebuilds the Annoy index in a background thread once the live delta is large enough."""

    def __init__(
        self, cfg: config.Config, compact: Compact, live_store: live.LiveStore, logger: logging.Logger
    ):
        self.cfg = cfg
        self.compact = compact
        self.live_store = live_store
        self.logger = logger
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self.failures = 0  # compactions in a row that failed here; 0 once one publishes

    def maybe_start(self, snap: Serving, view: live.LiveView) -> bool:
        if view.pending < self.cfg.compact_threshold or time.monotonic() < self._retry_at:
            return False
        with self._lock:
            if self.thread is not None and self.thread.is_alive():
                return False
            self.thread = threading.Thread(target=self._run, args=(snap,), name="compaction", daemon=True)
            self.thread.start()
            return True

    def _not_now(self, outcome: str, why: str) -> None:
        """A compaction that did not run here waits a while before the next try: otherwise every
        change in a worker started a thread while another worker or replica was compacting. After
        failures the wait doubles each time (up to MAX_BACKOFF_S): a rebuild that fails for a
        lasting reason is not retried every few seconds from a serving worker."""
        wait = max(1.0, 2 * self.cfg.reload_interval)
        if outcome == "failed":
            self.failures += 1
            wait = min(MAX_BACKOFF_S, wait * 2 ** (self.failures - 1))
            metrics.COMPACTION_FAILING.set(self.failures)
        self._retry_at = time.monotonic() + wait
        self.logger.info("compaction %s: %s (next try in %.0f s)", outcome, why, wait)
        metrics.COMPACTIONS.labels(outcome).inc()

    def _still_holding(self) -> None:
        """Just before publishing: another replica may have taken over a lock this one lost."""
        if not self.live_store.holds_compaction_lock():
            raise LockLost("the compaction lock was lost (its database connection dropped): not publishing")

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def _run(self, snap: Serving) -> None:
        manifest = snap.index.manifest
        cfg = self.cfg.replace(
            reduce=manifest.reduce,
            trees=manifest.trees,
            metric=manifest.metric,
            dims=manifest.dims if manifest.reduce != "none" else self.cfg.dims,
        )
        try:
            with self.live_store.compaction_lock() as mine:
                if not mine:
                    return self._not_now("skipped", "another replica is compacting")
                if store.current_version(self.cfg.index_dir) != snap.index.version:
                    return self._not_now("skipped", "a newer version was published meanwhile")
                options = BuildOptions(
                    embedder=snap.embedder,
                    progress=False,
                    log=self.logger.info,
                    before_publish=self._still_holding,
                )
                try:
                    report = self.compact(cfg, options, self.live_store)
                finally:
                    imaging.release_memory()  # what the build took (Annoy, vectors) back to the system
            self.logger.info("compaction published %s", getattr(report, "version", report))
            self.failures = 0
            metrics.COMPACTION_FAILING.set(0)
            metrics.COMPACTIONS.labels("published").inc()
        except store.BuildInProgress:
            self._not_now("skipped", "another rebuild is running")
        except Exception:
            self.logger.exception("compaction failed; the current index keeps serving")
            self._not_now("failed", "see the error above")
