"""Add and remove images while the service runs: a small exact layer in front of Annoy.

Annoy cannot change an index once built. Additions therefore go to a delta set that is searched
exactly (brute force) and merged with Annoy's answer; deletions are tombstones filtered out of
every answer. Both are committed to SQLite (WAL, synchronous=FULL) in ``INDEX_DIR/live.sqlite``
before a request is acknowledged, so a crash loses nothing acknowledged. Every worker checks the
database's change counter on each request, so a change is seen by all workers at once.

The database is also the one authority for ids: uploads and rebuilds both take new ids from its
counter, in a transaction, so no two items ever share one, however they interleave.

A compaction (a rebuild, see img2vec.build_index) takes the uploads in (they live in the
collection's ``uploads/`` folder, and their vectors are reused); the additions it absorbed leave
the delta an hour later, once no worker can still be on the version before. Tombstones stay: they
keep deleted files out of later rebuilds too. This module stores vectors; it never runs a model.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ann import Hit, SearchIndex
from vectors import distance_to_score, distances, row_norms

DB_FILE = "live.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS additions (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha1 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, model_key TEXT NOT NULL, vector BLOB NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', added_at REAL NOT NULL, compacted_at REAL);
CREATE TABLE IF NOT EXISTS deletions (id INTEGER PRIMARY KEY, path TEXT NOT NULL, deleted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# How long an addition stays in the delta after a published version took it in: workers still on
# the version before (for up to reload_interval seconds) must go on finding it there.
FORGET_AFTER_S = 3600


@dataclass(frozen=True)
class Addition:
    """An image added while the service ran: committed with its vector before it was acknowledged."""

    id: int
    path: str
    sha1: str
    size: int
    mtime_ns: int
    model_key: str
    vector: np.ndarray
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LiveState:
    """The whole delta at one moment, read in one transaction."""

    additions: dict[str, Addition] = field(default_factory=dict)  # by path
    deletions: dict[int, str] = field(default_factory=dict)  # id -> path

    @property
    def deleted_paths(self) -> frozenset[str]:
        return frozenset(self.deletions.values())


class LiveStore:
    """The durable delta of one index directory. Cheap to create; each call uses its own connection."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.path = self.index_dir / DB_FILE

    def connect(self) -> sqlite3.Connection:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        return conn

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with closing(self.connect()) as conn:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self, model_key: str | None = None) -> LiveState:
        """Additions (only those made with ``model_key``, if given) and deletions, consistently."""
        if not self.path.exists():
            return LiveState()
        query = "SELECT id, path, sha1, size, mtime_ns, model_key, vector, metadata FROM additions"
        params: tuple = ()
        if model_key is not None:
            query, params = query + " WHERE model_key = ?", (model_key,)
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
            deletions = dict(conn.execute("SELECT id, path FROM deletions").fetchall())
        additions = {
            r[1]: Addition(
                r[0], r[1], r[2], r[3], r[4], r[5], np.frombuffer(r[6], np.float32), json.loads(r[7])
            )
            for r in rows
        }
        return LiveState(additions, deletions)

    def _allocate(self, conn: sqlite3.Connection, count: int, floor: int) -> int:
        row = conn.execute("SELECT value FROM counters WHERE name = 'next_id'").fetchone()
        first = max(floor, row[0] if row else 0)
        conn.execute("INSERT OR REPLACE INTO counters VALUES ('next_id', ?)", (first + count,))
        return first

    def allocate_ids(self, count: int, floor: int = 0) -> int:
        """Reserve ``count`` new ids, never used before and never given again; returns the first."""
        with self._transaction() as conn:
            return self._allocate(conn, count, floor)

    def add(self, addition: Addition, floor: int = 0) -> int:
        """Durably record an embedded image under a new id (``addition.id`` is ignored)."""
        with self._transaction() as conn:
            item_id = self._allocate(conn, 1, floor)
            conn.execute(
                "INSERT INTO additions (id, path, sha1, size, mtime_ns, model_key, vector, metadata,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    addition.path,
                    addition.sha1,
                    addition.size,
                    addition.mtime_ns,
                    addition.model_key,
                    np.asarray(addition.vector, np.float32).tobytes(),
                    json.dumps(addition.metadata),
                    time.time(),
                ),
            )
        return item_id

    def delete(self, item_id: int, path: str) -> bool:
        """Tombstone an item; False when it was already deleted (by this or a concurrent request)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO deletions VALUES (?, ?, ?)", (item_id, path, time.time())
            )
            return cursor.rowcount == 1

    def mark_compacted(self, ids: set[int]) -> None:
        """Mark the additions that a published version now holds; drop those marked long ago.

        Workers skip additions that their index version already holds, so a marked addition is
        searched once, from the base; deleting it at once would hide it from a worker that has not
        yet switched to the new version.
        """
        if not self.path.exists():
            return
        now = time.time()
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE additions SET compacted_at = ? WHERE id = ? AND compacted_at IS NULL",
                [(now, i) for i in sorted(ids)],
            )
            conn.execute("DELETE FROM additions WHERE compacted_at < ?", (now - FORGET_AFTER_S,))


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
    pending = [
        a for a in state.additions.values() if a.id not in index.rows_by_id and a.id not in state.deletions
    ]
    hidden = frozenset(i for i in state.deletions if i in index.rows_by_id)
    if not pending:
        return LiveView(hidden=hidden)
    return LiveView(pending, index.to_index_space(np.stack([a.vector for a in pending])), hidden)


class LiveLayer:
    """Keeps one worker's LiveView current: reloads when the database or the index changes."""

    def __init__(self, live_store: LiveStore):
        self.store = live_store
        self._watch = live_store.connect()  # PRAGMA data_version counts other connections' commits
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._view = LiveView()

    def view(self, index: SearchIndex) -> LiveView:
        with self._lock:
            change = self._watch.execute("PRAGMA data_version").fetchone()[0]
            key = (change, index.version)
            if key != self._key:
                self._view = view_of(self.store.read(index.manifest.model_key), index)
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
