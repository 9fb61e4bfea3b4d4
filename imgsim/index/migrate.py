"""What earlier imgsim wrote, read as today's: the one module that knows older formats.

rclip upgrades its database when it opens it (``ensure_version``). An index version is immutable and
may be served from a read-only folder, so it is never rewritten in place: every file an older
imgsim may have written differently is read through here, which returns today's shape, and the next
build writes the current format (FORMAT_VERSION in index/manifest.py). No other module tests for a
file an older version lacks or for a key it did not write. What changed, oldest first:

- format 1, before segments: one index at the version's top and no segments.json (``segment_rows``:
  one segment, the version's own folder, nothing deleted; ``is_segmented``: no segment of it is
  kept, the next build rewrites it), no segment.json (``segment_depth``: the manifest's depth);
- a version built before thresholds, or before the depth was tuned: empty objects (``manifest``: None);
- thresholds written before references held the collection's own quantiles for similar and related,
  which no longer mean what the labels say (``manifest``: dropped);
- a version built before verified copies has no copies.json (``stored_copies``: None; its duplicates
  are refused until it is rebuilt, never grouped inside a request);
- verified matches stored before their pixel sizes and mirroring (``copy_match``: (0, 0), not mirrored);
- a build's edited queries saved before they named their edits (``calibration_has_edits``: made
  again);
- segments written before their files' sizes and SHA-1s were recorded (``segment_files``: not
  checked);
- segments written before local features or before perceptual hashes (``has_features``,
  ``has_hashes``: their copies are found by the embedding alone);
- an index directory from before the live store's kind was recorded (``live_store_kind``: SQLite,
  where its database is).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imgsim import durable

READABLE_FORMATS = (1, 2)  # manifest.json's format_version that this imgsim reads

# The files whose absence marks an older format (their writers take the names from here).
ITEMS_FILE = "items.json"
SEGMENTS_FILE = "segments.json"
SEGMENT_FILE = "segment.json"
COPIES_FILE = "copies.json"
FEATURE_SIZES_FILE = "kp_sizes.npy"
HASHES_FILE = "kp_hash.npy"


def unreadable(data: dict[str, Any]) -> str | None:
    """Why a version's manifest.json cannot be read by this imgsim (a later one wrote it), if so."""
    found = data.get("format_version")
    if found in READABLE_FORMATS:
        return None
    return f"index format {found}, this imgsim reads {', '.join(map(str, READABLE_FORMATS))}: rebuild it"


def manifest(data: dict[str, Any]) -> dict[str, Any]:
    """manifest.json as today's imgsim writes it: parts not measured absent, labels from a reference."""
    today = {k: v for k, v in data.items() if k not in ("recall", "thresholds", "precision_choice") or v}
    thresholds = today.get("thresholds")
    if thresholds is not None and not thresholds.get("reference"):
        today["thresholds"] = thresholds | {"similar": None, "related": None}
    return today


def segment_rows(version: Path) -> list[dict[str, Any]]:
    """segments.json's rows; a format-1 version is one segment, its own top folder."""
    path = Path(version) / SEGMENTS_FILE
    if path.is_file():
        return durable.read_json(path)
    return [{"name": "", "count": len(durable.read_json(Path(version) / ITEMS_FILE)), "deleted": []}]


def is_segmented(version: Path) -> bool:
    """Whether a version is made of segments (format 2): one of format 1 is rewritten whole."""
    return (Path(version) / SEGMENTS_FILE).is_file()


def segment_depth(folder: Path, manifest_depth: int) -> int:
    """The search_k tuned for a segment; a format-1 version's is its manifest's."""
    path = Path(folder) / SEGMENT_FILE
    return int(json.loads(path.read_text())["search_k"]) if path.is_file() else manifest_depth


def segment_files(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The size and SHA-1 of each file of a segment, as its build recorded them in segment.json;
    None for a segment written before they were recorded (or a format-1 version's)."""
    path = Path(folder) / SEGMENT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("files")


def stored_copies(version: Path) -> dict[str, Any] | None:
    """copies.json (reach, pairs, verdicts), or None for a version built before verified copies."""
    try:
        return json.loads((Path(version) / COPIES_FILE).read_text())
    except FileNotFoundError:
        return None


def copy_match(data: dict[str, Any]) -> dict[str, Any]:
    """A stored verified match with every key today's has."""
    return {"query_size": [0, 0], "result_size": [0, 0], "mirrored": False} | data


def calibration_has_edits(saved: Mapping[str, Any]) -> bool:
    """Whether a version's saved edited queries (search/tuning.py) say which edit made each."""
    return "edits" in saved


def has_features(folder: Path) -> bool:
    """Whether a segment stored its items' local features (segments before them did not)."""
    return (Path(folder) / FEATURE_SIZES_FILE).is_file()


def has_hashes(folder: Path) -> bool:
    """Whether a segment stored its items' perceptual hashes (segments before them did not)."""
    return (Path(folder) / HASHES_FILE).is_file()


def live_store_kind(index_dir: Path, marker: str, sqlite_file: str) -> str | None:
    """The live store kind an index directory recorded; SQLite where its database predates the
    record; None for a directory no store has used yet."""
    path = Path(index_dir) / marker
    if path.is_file():
        return path.read_text().strip()
    return "sqlite" if (Path(index_dir) / sqlite_file).exists() else None
