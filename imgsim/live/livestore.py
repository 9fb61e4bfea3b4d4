"""Where the live delta is kept: the interface every backend gives, and the embedded SQLite one.

The delta (additions with their vectors, deletions, the id counter) must be committed before a
request is acknowledged and seen by every worker on its next request. On one machine that is
SQLite (WAL, synchronous=FULL) in ``INDEX_DIR/live.sqlite``: no server to run. Several replicas
share PostgreSQL instead (pgstore.py). Both keep the same tables and give the same answers; the
tests run against both.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from imgsim.duplicates import decisions
from imgsim.duplicates.decisions import Decision

DB_FILE = "live.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS additions (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha1 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, model_key TEXT NOT NULL, vector BLOB NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', added_at REAL NOT NULL, compacted_at REAL);
CREATE TABLE IF NOT EXISTS deletions (id INTEGER PRIMARY KEY, path TEXT NOT NULL, deleted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, members TEXT NOT NULL,
    moves TEXT NOT NULL, decided_at REAL NOT NULL, state TEXT NOT NULL);
"""
# How long an addition stays in the delta after a published version took it in: workers still on
# the version before (for up to reload_interval seconds) must go on finding it there.
FORGET_AFTER_S = 3600
# A worker's view reads only the additions compacted less than this long ago: a worker switches to
# a new version within seconds, and reading an hour of absorbed additions on every change made each
# worker's memory and each change's cost grow with the rate of uploads.
RECENT_S = 120


class StoreUnavailable(RuntimeError):
    """The live store cannot be used as configured; the message says what to do."""


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


class LiveStore(Protocol):
    """What the service and the builds need of the delta's storage."""

    def read(
        self, model_key: str | None = None, compacted_since: float | None = None, deleted_since: float = 0.0
    ) -> LiveState:
        """Additions not deleted since (only those made with ``model_key``, if given; with
        ``compacted_since``, none compacted before that time, in epoch seconds) and the deletions
        made after ``deleted_since`` (epoch seconds), consistently."""

    def allocate_ids(self, count: int, floor: int = 0) -> int:
        """Reserve ``count`` new ids, never used before and never given again; returns the first."""

    def add(self, addition: Addition, floor: int = 0) -> int:
        """Durably record an embedded image under a new id (``addition.id`` is ignored)."""

    def delete(self, item_id: int, path: str) -> bool:
        """Tombstone an item; False when it was already deleted (by this or a concurrent request)."""

    def mark_compacted(self, ids: set[int]) -> None:
        """Mark the additions that a published version now holds; drop those marked long ago."""

    def change_marker(self) -> object:
        """A cheap value that differs after any committed change, by any process."""

    def compaction_lock(self) -> AbstractContextManager[bool]:
        """A context manager: True inside it for the one process allowed to compact now."""

    def holds_compaction_lock(self) -> bool:
        """Whether the lock compaction_lock gave is still this process's (a connection can drop)."""

    def decide(self, decision: Decision) -> Decision:
        """Durably record a decision about duplicates; returns it with its new id (never reused)."""

    def decisions(self) -> list[Decision]:
        """Every decision in force (and those a crash left moving or restoring), oldest first."""

    def set_decision_state(self, decision_id: int, state: str) -> None:
        """Mark a decision's trash move (or its undoing) as finished or under way."""

    def forget_decision(self, decision_id: int) -> bool:
        """Remove an undone decision; False when there was none with that id."""

    def restore_path(self, item_id: int) -> None:
        """Keep a deleted item's tombstone but let its path be indexed again (an undone removal)."""

    def describe(self) -> str:
        """Where the delta lives, for logs (no password)."""

    def close(self) -> None:
        """Give back connections (a build that opened its own store)."""


# Deleted additions are never read back: a service where images come and go would otherwise
# re-read every image ever added (and its vector) on every change, until the next compaction.
SELECT_ADDITIONS = (
    "SELECT id, path, sha1, size, mtime_ns, model_key, vector, metadata FROM additions"
    " WHERE id NOT IN (SELECT id FROM deletions)"
)
SELECT_DELETIONS = "SELECT id, path FROM deletions WHERE deleted_at > ?"
INSERT_ADDITION = (
    "INSERT INTO additions (id, path, sha1, size, mtime_ns, model_key, vector, metadata, added_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)  # the queries here use SQLite's ? placeholders; pgstore swaps in psycopg's %s


def addition_row(item_id: int, addition: Addition) -> tuple:
    """The values of INSERT_ADDITION, as both backends store them."""
    a, vector = addition, np.asarray(addition.vector, np.float32).tobytes()
    metadata = json.dumps(a.metadata)
    return (item_id, a.path, a.sha1, a.size, a.mtime_ns, a.model_key, vector, metadata, time.time())


def select_additions(model_key: str | None, compacted_since: float | None) -> tuple[str, tuple]:
    """The query (with ? placeholders) and parameters of ``LiveStore.read``'s additions."""
    query, params = SELECT_ADDITIONS, ()  # type: tuple[str, tuple[object, ...]]
    if model_key is not None:
        query, params = query + " AND model_key = ?", (model_key,)
    if compacted_since is not None:
        query += " AND (compacted_at IS NULL OR compacted_at > ?)"
        params += (compacted_since,)
    return query + " ORDER BY id", params


SELECT_DECISIONS = "SELECT id, kind, members, moves, decided_at, state FROM decisions ORDER BY id"
INSERT_DECISION = "INSERT INTO decisions (kind, members, moves, decided_at, state) VALUES (?, ?, ?, ?, ?)"


def decision_row(decision: Decision) -> tuple:
    """The values of INSERT_DECISION."""
    members, moves = json.dumps(decision.stored_members()), json.dumps(decision.stored_moves())
    return (decision.kind, members, moves, decision.decided_at, decision.state)


def row_to_decision(row: tuple) -> Decision:
    """A row of SELECT_DECISIONS."""
    return decisions.from_stored(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], row[5])


def row_to_addition(row: tuple) -> Addition:
    """A row of ``SELECT id, path, sha1, size, mtime_ns, model_key, vector, metadata``."""
    vector = np.frombuffer(row[6], np.float32)
    return Addition(row[0], row[1], row[2], row[3], row[4], row[5], vector, json.loads(row[7]))


class SqliteStore:
    """The delta in ``INDEX_DIR/live.sqlite``. Cheap to create; each call uses its own connection."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.path = self.index_dir / DB_FILE
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def close(self) -> None:
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None

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

    def read(
        self, model_key: str | None = None, compacted_since: float | None = None, deleted_since: float = 0.0
    ) -> LiveState:
        if not self.path.exists():
            return LiveState()
        query, params = select_additions(model_key, compacted_since)
        with self._transaction("DEFERRED") as conn:
            rows = conn.execute(query, params).fetchall()
            deletions = dict(conn.execute(SELECT_DELETIONS, (deleted_since,)).fetchall())
        return LiveState({r[1]: row_to_addition(r) for r in rows}, deletions)

    def _allocate(self, conn: sqlite3.Connection, count: int, floor: int) -> int:
        row = conn.execute("SELECT value FROM counters WHERE name = 'next_id'").fetchone()
        first = max(floor, row[0] if row else 0)
        conn.execute("INSERT OR REPLACE INTO counters VALUES ('next_id', ?)", (first + count,))
        return first

    def allocate_ids(self, count: int, floor: int = 0) -> int:
        with self._transaction() as conn:
            return self._allocate(conn, count, floor)

    def add(self, addition: Addition, floor: int = 0) -> int:
        with self._transaction() as conn:
            item_id = self._allocate(conn, 1, floor)
            conn.execute(INSERT_ADDITION, addition_row(item_id, addition))
        return item_id

    def delete(self, item_id: int, path: str) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO deletions VALUES (?, ?, ?)", (item_id, path, time.time())
            )
            return cursor.rowcount == 1

    def mark_compacted(self, ids: set[int]) -> None:
        """Workers skip additions that their index version already holds, so a marked addition is
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

    def decide(self, decision: Decision) -> Decision:
        with self._transaction() as conn:
            cursor = conn.execute(INSERT_DECISION, decision_row(decision))
        return dataclasses.replace(decision, id=int(cursor.lastrowid or 0))

    def decisions(self) -> list[Decision]:
        if not self.path.exists():
            return []
        with self._transaction("DEFERRED") as conn:
            return [row_to_decision(row) for row in conn.execute(SELECT_DECISIONS).fetchall()]

    def set_decision_state(self, decision_id: int, state: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE decisions SET state = ? WHERE id = ?", (state, decision_id))

    def forget_decision(self, decision_id: int) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM decisions WHERE id = ?", (decision_id,)).rowcount == 1

    def restore_path(self, item_id: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE deletions SET path = '' WHERE id = ?", (item_id,))

    def change_marker(self) -> object:
        """SQLite's data_version, which counts the commits of every other connection."""
        with self._watch_lock:
            if self._watch is None:
                self._watch = self.connect()
            return self._watch.execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def compaction_lock(self) -> Iterator[bool]:
        """On one machine the build's own lock file (store.lock) is enough."""
        yield True

    def holds_compaction_lock(self) -> bool:
        return True  # a lock file is held until this process lets it go or dies
