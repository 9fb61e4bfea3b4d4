"""Add and remove images while the service runs: a small exact layer in front of Annoy.

Annoy cannot change an index once built. Additions therefore go to a delta set that is searched
exactly (brute force) and merged with Annoy's answer; deletions are tombstones filtered out of
every answer. Both are committed to the live store (livestore.py: SQLite in the index directory
by default, PostgreSQL with IMGSIM_LIVE_URL) before a request is acknowledged, so a crash loses
nothing acknowledged. Every worker checks the store's change marker on each request, so a change
is seen by all workers (of every replica) at once.

The database is also the one authority for ids: uploads and rebuilds both take new ids from its
counter, in a transaction, so no two items ever share one, however they interleave.

A compaction (a rebuild, see indexer.build_index) takes the uploads in (they live in the
collection's ``uploads/`` folder, and their vectors are reused); the additions it absorbed leave
the delta an hour later, once no worker can still be on the version before. Tombstones stay: they
keep deleted files out of later rebuilds too. This module stores vectors; it never runs a model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import store
from ann import Hit, SearchIndex
from livestore import DB_FILE, RECENT_S, Addition, LiveState, LiveStore, SqliteStore, StoreUnavailable
from vectors import distance_to_score, distances, row_norms

__all__ = [
    "Addition", "LiveLayer", "LiveState", "LiveStore", "LiveView", "StoreUnavailable", "open_store", "search",
    "view_of",
]  # fmt: skip


KIND_FILE = "live_store"  # which kind of store an index directory's ids and changes live in


def open_store(index_dir: Path, live_url: str = "") -> LiveStore:
    """The delta's storage: PostgreSQL at ``live_url`` when given, else SQLite in ``index_dir``.

    The first use records the kind in the index directory; a process configured with the other kind
    is refused (StoreUnavailable), since two id counters would hand out the same ids.
    """
    kind = "postgresql" if live_url else "sqlite"
    marker = Path(index_dir) / KIND_FILE
    recorded = marker.read_text().strip() if marker.is_file() else None
    if recorded is None and (Path(index_dir) / DB_FILE).exists():
        recorded = "sqlite"  # an index directory from before the kind was recorded
    if recorded is not None and recorded != kind:
        setting = "set IMGSIM_LIVE_URL (or --live-url) to its database" if recorded == "postgresql" else (
            "unset IMGSIM_LIVE_URL"
        )
        raise StoreUnavailable(f"{index_dir} keeps its live changes and ids in {recorded}: {setting}")
    if live_url:
        from pgstore import PostgresStore  # psycopg is imported only by those who use it

        opened: LiveStore = PostgresStore(live_url)
    else:
        opened = SqliteStore(index_dir)
    if not marker.is_file():  # recorded once the store could be opened
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        store.atomic_write(marker, lambda handle: handle.write(kind.encode() + b"\n"))
    return opened


# --- a worker's view -------------------------------------------------------------------------


@dataclass
class LiveView:
    """The delta over one index version, as a request sees it: the additions that version does
    not hold yet (in its vector space, deleted ones left out) and the tombstones over its items."""

    additions: list[Addition] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    hidden: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.rows_by_id = {addition.id: row for row, addition in enumerate(self.additions)}
        self.norms = row_norms(self.vectors)  # once, not per query

    @property
    def pending(self) -> int:
        """Changes that a compaction would take in: additions and tombstones over the base."""
        return len(self.additions) + len(self.hidden)

    def item_count(self, index: SearchIndex) -> int:
        return len(index.items) - len(self.hidden) + len(self.additions)


def view_of(state: LiveState, index: SearchIndex) -> LiveView:
    pending = [a for a in state.additions.values() if a.id not in index.rows_by_id]  # none deleted
    hidden = frozenset(i for i in state.deletions if i in index.rows_by_id)
    if not pending:
        return LiveView(hidden=hidden)
    return LiveView(pending, index.to_index_space(np.stack([a.vector for a in pending])), hidden)


class LiveLayer:
    """Keeps one worker's LiveView current: reloads when the database or the index changes."""

    def __init__(self, live_store: LiveStore):
        self.store = live_store
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._view = LiveView()

    def view(self, index: SearchIndex) -> LiveView:
        with self._lock:
            key = (self.store.change_marker(), index.version)
            if key != self._key:
                # Deletions the build had read are applied in its version: only later ones matter.
                since = max(0.0, index.manifest.live_read_at - RECENT_S)
                state = self.store.read(
                    index.manifest.model_key, compacted_within=RECENT_S, deleted_since=since
                )
                self._view = view_of(state, index)
                self._key = key
            return self._view


def search(
    index: SearchIndex,
    view: LiveView,
    vector: np.ndarray,
    k: int,
    search_k: int = -1,
    exclude: int | None = None,
    reduced: bool = False,
) -> list[Hit]:
    """Annoy's answer without tombstones, merged with an exact search of the additions."""
    query = np.asarray(vector, np.float32) if reduced else index.to_index_space(vector[None, :])[0]
    hidden = set(view.hidden) | ({exclude} if exclude is not None else set())
    # Few tombstones fall among a query's neighbours: ask Annoy for a small margin first, and for
    # every hidden item only when the margin was not enough (asking for k + all of them always
    # would multiply the work of every query by the number of tombstones).
    wanted = k + min(len(hidden), k)
    hits = [h for h in index.search_reduced(query, wanted, search_k) if h.id not in hidden]
    if len(hits) < k and wanted < k + len(hidden):
        hits = [h for h in index.search_reduced(query, k + len(hidden), search_k) if h.id not in hidden]
    if view.additions:
        found = distances(view.vectors, query, index.metric, view.norms)
        for row in np.argsort(found)[: k + 1]:
            addition = view.additions[row]
            if addition.id == exclude:
                continue
            distance = float(found[row])
            hits.append(Hit(addition.id, addition.path, distance, distance_to_score(distance, index.metric)))
    return sorted(hits, key=lambda hit: hit.distance)[:k]
