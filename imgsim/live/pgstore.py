"""The live delta in PostgreSQL, shared by every replica of the service (IMGSIM_LIVE_URL).

The same tables as the SQLite store. What several machines add: ids come from one counter row,
updated in the adding transaction, so two replicas never hand out the same id; every write also
bumps a ``changes`` row, which each replica reads once per request (one indexed primary-key read)
to see another replica's change on its very next request; and a session advisory lock lets
exactly one replica compact at a time. Each worker keeps a small psycopg connection pool.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from imgsim.duplicates.decisions import Decision
from imgsim.live.livestore import (
    FORGET_AFTER_S,
    INSERT_ADDITION,
    INSERT_DECISION,
    SELECT_DECISIONS,
    SELECT_DELETIONS,
    Addition,
    LiveState,
    StoreUnavailable,
    addition_row,
    decision_row,
    row_to_addition,
    row_to_decision,
    select_additions,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS additions (
    id BIGINT PRIMARY KEY, path TEXT NOT NULL, sha1 TEXT NOT NULL, size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL, model_key TEXT NOT NULL, vector BYTEA NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', added_at DOUBLE PRECISION NOT NULL,
    compacted_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS deletions (
    id BIGINT PRIMARY KEY, path TEXT NOT NULL, deleted_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind TEXT NOT NULL, members TEXT NOT NULL,
    moves TEXT NOT NULL, decided_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL);
"""
# Advisory lock keys (any two fixed numbers): one for creating the schema, one for compacting.
SCHEMA_LOCK, COMPACTION_LOCK = 7_356_001, 7_356_002
BUMP_CHANGES = (
    "INSERT INTO counters AS c VALUES ('changes', 1) ON CONFLICT (name) DO UPDATE SET value = c.value + 1"
)


class PostgresStore:
    """The delta in the PostgreSQL database at ``url``; writes are committed before they return."""

    def __init__(self, url: str, pool_size: int = 4):
        self.url = url
        self._lock_conn: psycopg.Connection | None = None
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False, name="imgsim-live")
        try:
            self.pool.open(wait=True, timeout=15)
        except PoolTimeout:
            self.pool.close()
            raise StoreUnavailable(
                f"cannot connect to the live store at {self.describe()} (IMGSIM_LIVE_URL) within 15 s"
            ) from None
        with self.pool.connection() as conn, conn.transaction():
            # Two replicas starting at once would race on CREATE TABLE IF NOT EXISTS.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)

    def describe(self) -> str:
        parts = conninfo_to_dict(self.url)
        return f"postgresql://{parts.get('host', '')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"

    def close(self) -> None:
        self.pool.close()

    def read(
        self, model_key: str | None = None, compacted_since: float | None = None, deleted_since: float = 0.0
    ) -> LiveState:
        query, params = select_additions(model_key, compacted_since)
        query = query.replace("?", "%s")
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one consistent snapshot
            rows = conn.execute(query, params).fetchall()
            deletions: dict[int, str] = dict(
                conn.execute(SELECT_DELETIONS.replace("?", "%s"), (deleted_since,)).fetchall()
            )
        rows = [(*row[:6], bytes(row[6]), row[7]) for row in rows]
        return LiveState({row[1]: row_to_addition(row) for row in rows}, deletions)

    @staticmethod
    def _allocate(conn: psycopg.Connection, count: int, floor: int) -> int:
        # The row lock this upsert takes orders concurrent allocations, whichever replica asks.
        row = conn.execute(
            "INSERT INTO counters AS c VALUES ('next_id', %(floor)s + %(count)s) ON CONFLICT (name)"
            " DO UPDATE SET value = GREATEST(c.value, %(floor)s) + %(count)s RETURNING value",
            {"floor": floor, "count": count},
        ).fetchone()
        assert row is not None  # RETURNING always gives the row
        return row[0] - count

    def allocate_ids(self, count: int, floor: int = 0) -> int:
        with self.pool.connection() as conn, conn.transaction():
            return self._allocate(conn, count, floor)

    def add(self, addition: Addition, floor: int = 0) -> int:
        with self.pool.connection() as conn, conn.transaction():
            item_id = self._allocate(conn, 1, floor)
            conn.execute(INSERT_ADDITION.replace("?", "%s"), addition_row(item_id, addition))
            conn.execute(BUMP_CHANGES)
        return item_id

    def delete(self, item_id: int, path: str) -> bool:
        with self.pool.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "INSERT INTO deletions VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (item_id, path, time.time()),
            )
            if cursor.rowcount != 1:
                return False
            conn.execute(BUMP_CHANGES)
            return True

    def mark_compacted(self, ids: set[int]) -> None:
        now = time.time()
        with self.pool.connection() as conn, conn.transaction():
            conn.cursor().executemany(
                "UPDATE additions SET compacted_at = %s WHERE id = %s AND compacted_at IS NULL",
                [(now, i) for i in sorted(ids)],
            )
            conn.execute("DELETE FROM additions WHERE compacted_at < %s", (now - FORGET_AFTER_S,))
            conn.execute(BUMP_CHANGES)

    def decide(self, decision: Decision) -> Decision:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                INSERT_DECISION.replace("?", "%s") + " RETURNING id", decision_row(decision)
            ).fetchone()
            conn.execute(BUMP_CHANGES)
        assert row is not None  # RETURNING always gives the row
        return dataclasses.replace(decision, id=int(row[0]))

    def decisions(self) -> list[Decision]:
        with self.pool.connection() as conn:
            return [row_to_decision(row) for row in conn.execute(SELECT_DECISIONS).fetchall()]

    def set_decision_state(self, decision_id: int, state: str) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("UPDATE decisions SET state = %s WHERE id = %s", (state, decision_id))
            conn.execute(BUMP_CHANGES)

    def forget_decision(self, decision_id: int) -> bool:
        with self.pool.connection() as conn, conn.transaction():
            forgotten = conn.execute("DELETE FROM decisions WHERE id = %s", (decision_id,)).rowcount == 1
            conn.execute(BUMP_CHANGES)
        return forgotten

    def restore_path(self, item_id: int) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("UPDATE deletions SET path = '' WHERE id = %s", (item_id,))
            conn.execute(BUMP_CHANGES)

    def change_marker(self) -> object:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'changes'").fetchone()
        return row[0] if row else 0

    @contextmanager
    def compaction_lock(self) -> Iterator[bool]:
        """PostgreSQL's session advisory lock, on a connection of its own for the compaction (the
        pool's stay free for requests), with TCP keepalives so that a dead peer is noticed;
        released by the server itself if this process dies. holds_compaction_lock says whether
        that session, and so the lock, is still there."""
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            answer = conn.execute("SELECT pg_try_advisory_lock(%s)", (COMPACTION_LOCK,)).fetchone()
            mine = answer is not None and answer[0]
            self._lock_conn = conn if mine else None
            yield mine
        finally:
            self._lock_conn = None
            conn.close()  # ends the session: the lock goes with it

    def holds_compaction_lock(self) -> bool:
        """A session lock lasts as long as its session: the lock is ours while its connection lives."""
        conn = self._lock_conn
        if conn is None or conn.closed:
            return False
        try:
            return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False
