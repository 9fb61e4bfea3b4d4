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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsim import durable
from imgsim.index import migrate
from imgsim.index.depth import TUNED, Depth
from imgsim.index.vectors import distance_to_score, distances, row_norms
from imgsim.live.livestore import (
    DB_FILE,
    RECENT_S,
    Addition,
    LiveState,
    LiveStore,
    SqliteStore,
    StoreUnavailable,
)
from imgsim.search.annoy_index import Hit, SearchIndex

__all__ = [
    "Addition",
    "LiveLayer",
    "LiveState",
    "LiveStore",
    "LiveView",
    "StoreUnavailable",
    "open_store",
    "search",
    "view_of",
]


KIND_FILE = "live_store"  # which kind of store an index directory's ids and changes live in


def open_store(index_dir: Path, live_url: str = "") -> LiveStore:
    """The delta's storage: PostgreSQL at ``live_url`` when given, else SQLite in ``index_dir``.

    The first use records the kind in the index directory; a process configured with the other kind
    is refused (StoreUnavailable), since two id counters would hand out the same ids.
    """
    kind = "postgresql" if live_url else "sqlite"
    marker = Path(index_dir) / KIND_FILE
    recorded = migrate.live_store_kind(index_dir, KIND_FILE, DB_FILE)
    if recorded is not None and recorded != kind:
        setting = (
            "set IMGSIM_LIVE_URL (or --live-url) to its database"
            if recorded == "postgresql"
            else ("unset IMGSIM_LIVE_URL")
        )
        raise StoreUnavailable(f"{index_dir} keeps its live changes and ids in {recorded}: {setting}")
    if live_url:
        from imgsim.live.pgstore import PostgresStore  # psycopg is imported only by those who use it

        opened: LiveStore = PostgresStore(live_url)
    else:
        opened = SqliteStore(index_dir)
    if not marker.is_file():  # recorded once the store could be opened
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        durable.atomic_write(marker, lambda handle: handle.write(kind.encode() + b"\n"))
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
                # What this version's build read is in it: only later changes matter, deletions and
                # the additions later versions took in. The window is this version's, not the
                # clock's: a worker that cannot load a newer version keeps finding what it absorbed.
                since = max(0.0, index.manifest.live_read_at - RECENT_S)
                state = self.store.read(
                    str(index.manifest.model_key), compacted_since=since, deleted_since=since
                )
                self._view = view_of(state, index)
                self._key = key
            return self._view


MAX_CANDIDATES = 10_000  # a filtered search examines at most this many of Annoy's nearest


def under(path: str, folders: Sequence[str]) -> bool:
    """Whether ``path`` lies in one of ``folders`` (all paths when none is given)."""
    return not folders or any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


@dataclass
class Page:
    """One page of a search: the hits, and what may lie beyond them."""

    hits: list[Hit]
    more: bool  # results beyond this page may exist
    truncated: bool  # the filter left fewer than asked among the MAX_CANDIDATES nearest examined


def search(
    index: SearchIndex,
    view: LiveView,
    vector: np.ndarray,
    k: int,
    depth: Depth = TUNED,
    exclude: int | None = None,
    reduced: bool = False,
) -> list[Hit]:
    """Annoy's answer without tombstones, merged with an exact search of the additions."""
    return search_page(index, view, vector, k, depth, exclude, reduced).hits


def search_page(
    index: SearchIndex,
    view: LiveView,
    vector: np.ndarray,
    k: int,
    depth: Depth = TUNED,
    exclude: int | Collection[int] | None = None,
    reduced: bool = False,
    offset: int = 0,
    folders: Sequence[str] = (),
) -> Page:
    """Results ``offset`` to ``offset + k`` of the ranking restricted to ``folders``: Annoy is
    asked for more candidates (x4 each round, up to MAX_CANDIDATES) until enough pass the filter
    and the tombstones; the additions are searched exactly."""
    query = np.asarray(vector, np.float32) if reduced else index.to_index_space(vector[None, :])[0]
    excluded = {exclude} if isinstance(exclude, int) else set(exclude or ())
    hidden = set(view.hidden) | excluded
    need, count = offset + k, len(index.items)

    def keep(hit: Hit) -> bool:
        return hit.id not in hidden and under(hit.path, folders)

    # Few tombstones fall among a query's neighbours: a small margin first, more only if needed.
    cap = min(count, max(need + len(hidden), MAX_CANDIDATES))
    wanted = min(cap, need + min(len(hidden), need) if not folders else 4 * need)
    while True:
        found = index.search_reduced(query, wanted, depth)
        hits = [hit for hit in found if keep(hit)]
        if len(hits) >= need or len(found) < wanted or wanted >= cap:
            break
        wanted = min(cap, 4 * wanted)
    truncated = len(hits) < need and wanted >= cap and cap < count
    if view.additions:
        found_extra = distances(view.vectors, query, index.metric, view.norms)
        taken = 0
        for row in np.argsort(found_extra):
            addition = view.additions[row]
            if addition.id in excluded or not under(addition.path, folders):
                continue
            distance = float(found_extra[row])
            hits.append(Hit(addition.id, addition.path, distance, distance_to_score(distance, index.metric)))
            taken += 1
            if taken > need:
                break
    ranked = sorted(hits, key=lambda hit: hit.distance)
    more = len(ranked) > need or (len(found) >= wanted and wanted < count)
    return Page(ranked[offset:need], more=more, truncated=truncated)
