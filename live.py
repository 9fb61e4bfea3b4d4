"""Add and remove images while the service runs: a small exact layer in front of Annoy.

Annoy cannot change an index once built. Additions therefore go to a delta set that is searched
exactly (brute force) and merged with Annoy's answer; deletions are tombstones filtered out of
every answer. Both are committed to SQLite (WAL, synchronous=FULL) in ``INDEX_DIR/live.sqlite``
before a request is acknowledged, so a crash loses nothing acknowledged. Every worker checks the
database's change counter on each request, so a change is seen by all workers at once.

When the delta grows past ``compact_threshold``, compaction rebuilds the Annoy index with
``img2vec.build_index`` (uploads live in the collection's ``uploads/`` folder, so the rebuild finds
them, and their vectors are reused) and swaps it in atomically; the additions it absorbed leave
the delta an hour later, once no worker can still be on the version before. Tombstones stay: they
keep deleted files out of later rebuilds too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import imaging

DB_FILE = "live.sqlite"
UPLOADS = "uploads"
SCHEMA = """
CREATE TABLE IF NOT EXISTS additions (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, sha1 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, model_key TEXT NOT NULL, vector BLOB NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', added_at REAL NOT NULL, compacted_at REAL);
CREATE TABLE IF NOT EXISTS deletions (id INTEGER PRIMARY KEY, path TEXT NOT NULL, deleted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


def connect(index_dir: Path) -> sqlite3.Connection:
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        Path(index_dir) / DB_FILE, timeout=30, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


def _next_id(conn: sqlite3.Connection, base_next_id: int) -> int:
    row = conn.execute("SELECT value FROM counters WHERE name = 'next_id'").fetchone()
    return max(base_next_id, row[0] if row else 0)


def next_id(index_dir: Path) -> int:
    """The first id no live addition uses (0 when there is no live layer)."""
    if not (Path(index_dir) / DB_FILE).exists():
        return 0
    with closing(connect(index_dir)) as conn:
        return _next_id(conn, 0)


def record_addition(
    conn,
    base_next_id: int,
    path: str,
    sha1: str,
    size: int,
    mtime_ns: int,
    model_key: str,
    vector: np.ndarray,
    metadata: dict,
) -> int:
    """Durably add one embedded image; returns its new id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        item_id = _next_id(conn, base_next_id)
        conn.execute(
            "INSERT INTO additions (id, path, sha1, size, mtime_ns, model_key, vector, metadata, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item_id,
                path,
                sha1,
                size,
                mtime_ns,
                model_key,
                np.asarray(vector, np.float32).tobytes(),
                json.dumps(metadata),
                time.time(),
            ),
        )
        conn.execute("INSERT OR REPLACE INTO counters VALUES ('next_id', ?)", (item_id + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return item_id


def record_deletion(conn, item_id: int, path: str) -> None:
    conn.execute("INSERT OR REPLACE INTO deletions VALUES (?, ?, ?)", (item_id, path, time.time()))


def deleted_paths(index_dir: Path) -> set[str]:
    if not (Path(index_dir) / DB_FILE).exists():
        return set()
    with closing(connect(index_dir)) as conn:
        return {row[0] for row in conn.execute("SELECT path FROM deletions")}


def additions_by_path(index_dir: Path, model_key: str) -> dict[str, tuple]:
    """path -> (id, size, mtime_ns, sha1, vector) of live additions made with this model."""
    if not (Path(index_dir) / DB_FILE).exists():
        return {}
    with closing(connect(index_dir)) as conn:
        rows = conn.execute(
            "SELECT path, id, size, mtime_ns, sha1, vector FROM additions WHERE model_key = ?", (model_key,)
        )
        return {r[0]: (r[1], r[2], r[3], r[4], np.frombuffer(r[5], np.float32)) for r in rows}


# How long an addition stays in the delta after a published version took it in: workers still on
# the version before (for up to reload_interval seconds) must go on finding it there.
FORGET_AFTER_S = 3600


def forget_compacted(index_dir: Path, ids: set[int]) -> None:
    """Mark the additions that a published version now holds; drop those marked long ago.

    Workers skip additions that their index version already holds, so a marked addition is
    searched once, from the base; deleting it at once would hide it from a worker that has not
    yet switched to the new version.
    """
    if not (Path(index_dir) / DB_FILE).exists():
        return
    now = time.time()
    with closing(connect(index_dir)) as conn:
        conn.executemany(
            "UPDATE additions SET compacted_at = ? WHERE id = ? AND compacted_at IS NULL",
            [(now, i) for i in sorted(ids)],
        )
        conn.execute("DELETE FROM additions WHERE compacted_at < ?", (now - FORGET_AFTER_S,))


# --- a worker's view -------------------------------------------------------------------------


@dataclass
class LiveView:
    """The delta as one request sees it: additions (in the index's vector space) and tombstones."""

    ids: list[int] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    deleted: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.rows_by_id = {item_id: row for row, item_id in enumerate(self.ids)}
        self.norms = np.maximum(np.linalg.norm(self.vectors, axis=1), 1e-12)  # once, not per query

    @property
    def pending(self) -> int:
        return len(self.ids) + len(self.deleted)


def writer(index_dir: Path):
    """A short-lived connection for one change: the readers' change counters then see it."""
    return closing(connect(index_dir))


class LiveLayer:
    """Keeps one worker's LiveView current: reloads when the database or the index changes."""

    def __init__(self, index_dir: Path):
        self.conn = connect(index_dir)
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._view = LiveView()

    def view(self, index) -> LiveView:
        with self._lock:
            change = self.conn.execute("PRAGMA data_version").fetchone()[0]
            key = (change, index.version)
            if key != self._key:
                self._view = self._load(index)
                self._key = key
            return self._view

    def _load(self, index) -> LiveView:
        model_key = index.manifest["model_key"]
        rows = self.conn.execute(
            "SELECT id, path, sha1, vector, metadata FROM additions WHERE model_key = ? ORDER BY id",
            (model_key,),
        ).fetchall()
        deleted = frozenset(r[0] for r in self.conn.execute("SELECT id FROM deletions"))
        rows = [r for r in rows if r[0] not in index.rows_by_id]  # already compacted into the base
        if not rows:
            return LiveView(deleted=deleted)
        full = np.stack([np.frombuffer(r[3], np.float32) for r in rows])
        reduced = index.to_index_space(full)
        items = [{"id": r[0], "path": r[1], "sha1": r[2], "metadata": json.loads(r[4])} for r in rows]
        return LiveView([r[0] for r in rows], items, reduced, deleted)


def _distances(matrix: np.ndarray, norms: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """The distances Annoy would report, computed exactly."""
    if metric == "angular":
        cos = (matrix @ query) / (norms * max(float(np.linalg.norm(query)), 1e-12))
        return np.sqrt(np.maximum(2.0 - 2.0 * cos, 0.0))
    if metric == "euclidean":
        return np.linalg.norm(matrix - query, axis=1)
    if metric == "manhattan":
        return np.abs(matrix - query).sum(axis=1)
    raise ValueError(f"live updates support the angular, euclidean and manhattan metrics, not {metric}")


def search(
    index,
    view: LiveView,
    vector: np.ndarray,
    k: int,
    search_k: int = -1,
    exclude: int | None = None,
    reduced: bool = False,
) -> list:
    """Annoy's answer without tombstones, merged with an exact search of the additions."""
    import ann

    query = np.asarray(vector, np.float32) if reduced else index.to_index_space(vector[None, :])[0]
    hidden = {i for i in view.deleted if i in index.rows_by_id}
    if exclude is not None:
        hidden.add(exclude)
    # Few tombstones fall among a query's neighbours: ask Annoy for a small margin first, and for
    # every hidden item only when the margin was not enough (asking for k + all of them always
    # would multiply the work of every query by the number of tombstones).
    wanted = k + min(len(hidden), k)
    hits = [h for h in index.search_reduced(query, wanted, search_k) if h.id not in hidden]
    if len(hits) < k and wanted < k + len(hidden):
        hits = [h for h in index.search_reduced(query, k + len(hidden), search_k) if h.id not in hidden]
    metric = index.manifest["metric"]
    if view.ids:
        distances = _distances(view.vectors, view.norms, query, metric)
        for row in np.argsort(distances)[: k + len(hidden)]:
            item = view.items[row]
            if item["id"] in view.deleted or item["id"] == exclude:
                continue
            hits.append(
                ann.Hit(
                    item["id"],
                    item["path"],
                    float(distances[row]),
                    ann.distance_to_score(float(distances[row]), metric),
                )
            )
    return sorted(hits, key=lambda hit: hit.distance)[:k]


# --- adding and removing ----------------------------------------------------------------------


def add_image(conn, index, embedder, data: bytes, image, metadata: dict) -> dict:
    """Store an image under the collection's uploads/ with a server-chosen name, embed it, and
    commit it to the delta. ``image`` is ``data`` decoded by the caller, who refuses bad input."""
    import hashlib

    fmt = imaging.image_format(data)
    vector = embedder.embed_images([image])[0]
    folder = index.collection_root / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex + EXTENSIONS.get(fmt, ".img")
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / name)
    stat = (folder / name).stat()
    path = f"{UPLOADS}/{name}"
    item_id = record_addition(
        conn,
        int(index.manifest.get("next_id", 0)),
        path,
        hashlib.sha1(data).hexdigest(),
        stat.st_size,
        stat.st_mtime_ns,
        index.manifest["model_key"],
        vector,
        metadata,
    )
    return {"id": item_id, "path": path}


def remove_item(conn, index, view: LiveView, item_id: int) -> str | None:
    """Tombstone an item of the base index or of the delta; returns its path, None if unknown."""
    if item_id in view.deleted:
        return None
    if item_id in index.rows_by_id:
        path = index.items[index.rows_by_id[item_id]]["path"]
    elif item_id in view.rows_by_id:
        path = view.items[view.rows_by_id[item_id]]["path"]
    else:
        return None
    record_deletion(conn, item_id, path)
    return path
