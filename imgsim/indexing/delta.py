"""A compaction: the live delta written into the index at the cost of the delta.

The live layer holds additions with their vectors (made by the index's model) and tombstones. A
compaction links every segment of the current version into a new one, puts each tombstone on the
segment that holds its row, and writes the additions as one new segment (indexing/segment_layout.py);
the merge policy may then merge small segments. It neither scans the collection nor reads the
vectors of the segments it keeps, so its cost follows the delta, not the collection (docs/
scaling.md). It publishes before it checks its additions for copies (at 1M vectors that check,
each addition's nearest searched in every segment, was most of a compaction's time), and then
checks them in the version it published (verifying.carry_copies, check_pending). A delta it
cannot write this way (additions made by another model) goes through a build instead
(indexer.build_index), which embeds them.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgsim import config, durable
from imgsim.duplicates import copy_pairs
from imgsim.index import migrate, store
from imgsim.index.model_key import ModelKey
from imgsim.indexing import collection, segment_layout, verifying, version_writer
from imgsim.live import live
from imgsim.search import tuning

Log = Callable[[str], None]


def can_compact(current: collection.Previous | None, state: live.LiveState) -> bool:
    """Whether the delta can be written without a build: a segmented version, and additions all
    made by its model."""
    return (
        current is not None
        and migrate.is_segmented(current.version)
        and all(a.model_key == str(current.manifest.model_key) for a in state.additions.values())
    )


def compact(
    cfg: config.Config,
    current: collection.Previous,
    live_store: live.LiveStore,
    state: live.LiveState,
    live_read_at: float,
    log: Log,
    before_publish: Callable[[], None] | None = None,
) -> tuple[Path, int, int]:
    """Write the live delta ``state`` (read at ``live_read_at``) over ``current`` as a new version
    and publish it (the caller holds the build lock and checked can_compact); returns the
    version, its items and the additions it took in."""
    began = time.perf_counter()
    version, manifest = current.version, dataclasses.replace(current.manifest)
    rows_by_id = {item.id: row for row, item in enumerate(current.items)}
    root = Path(manifest.collection_root)
    added = [a for a in sorted(state.additions.values(), key=lambda a: a.id) if a.id not in rows_by_id]
    added = [a for a in added if a.id not in state.deletions and (root / a.path).is_file()]
    refs_before = store.read_segments(version)
    refs = _tombstoned(refs_before, [rows_by_id[i] for i in state.deletions if i in rows_by_id])
    items = [store.Item(a.id, a.path, a.size, a.mtime_ns, a.sha1) for a in added]
    by_id = {a.id: a.vector for a in added}

    def fill(building: Path) -> version_writer.Filled:
        for ref in refs:
            durable.link_tree(store.segment_dir(version, ref.name), store.segment_dir(building, ref.name))
        # the map too: its points are ids, those deleted since are left out when it is shown
        for name in ("skipped.json", tuning.CALIBRATION_FILE, store.MAP_FILE):
            if (version / name).exists():
                shutil.copy2(version / name, building / name)
        _keep_models(version, building)
        to_index = segment_layout.same_space(cfg, version, building)
        calibration = _calibration(version, manifest.model_key)
        layout = segment_layout.Layout(refs, items, version)
        features = verifying.feature_source(root, cfg)
        written = segment_layout.write_segments(
            building, cfg, layout, lambda item: by_id[item.id], to_index, features, calibration, False, log
        )
        all_items = store.items_of(building, written.refs)
        log(
            f"Compaction: {len(items)} additions, {_deleted(refs) - _deleted(refs_before)} "
            f"deletions; {segment_layout.summary(written.refs)}"
        )
        manifest.items, manifest.live_read_at, manifest.embedded_this_run = len(all_items), live_read_at, 0
        manifest.next_id = max([manifest.next_id, *(a.id + 1 for a in added)])
        manifest.created_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest.build_seconds = round(time.perf_counter() - began, 2)
        manifest.annoy_build_seconds = round(written.annoy_seconds, 2)
        fresh = {item.id for item in items}

        def verify(folder: Path) -> None:
            verifying.verify_copies(folder, all_items, version, current.items, fresh, cfg, log)

        def carry(folder: Path) -> bool:
            return verifying.carry_copies(folder, all_items, version, current.items, fresh)

        return version_writer.Filled(written.refs, manifest, verify, all_items, carry)

    published = version_writer.write_version(cfg, fill, before_publish)
    live_store.mark_compacted({a.id for a in added})
    _check_pending(published, cfg, log, time.perf_counter() - began)
    return published, manifest.items, len(added)


def _check_pending(version: Path, cfg: config.Config, log: Log, took: float) -> None:
    """The copies of the additions a compaction published unchecked, checked now in the served
    version. Where that fails (or the process is killed), they stay pending in its copies.json
    and the next compaction or build checks them: nothing is lost."""
    pending = copy_pairs.pending_of(version)
    if not pending:
        return
    log(f"Compaction published {version.name} in {took:.1f} s; checking the copies of {len(pending)} items.")
    try:
        verifying.check_pending(version, cfg, log)
    except Exception as error:  # the version is published and served: only its copies wait
        log(f"Copies of {len(pending)} items not checked yet ({error}); the next compaction checks them.")


def _tombstoned(refs: list[store.SegmentRef], rows: list[int]) -> list[store.SegmentRef]:
    """The segments with a tombstone on each of the version's ``rows`` (deleted items)."""
    starts = np.cumsum([0] + [ref.live for ref in refs])
    deleted: dict[int, set[int]] = {}
    for row in rows:
        part = int(np.searchsorted(starts, row, side="right")) - 1
        deleted.setdefault(part, set()).add(row - int(starts[part]))
    out = []
    for part, ref in enumerate(refs):
        if part not in deleted:
            out.append(ref)
            continue
        local = store.live_rows(ref)[sorted(deleted[part])]
        out.append(
            store.SegmentRef(ref.name, ref.count, tuple(sorted(set(ref.deleted) | set(local.tolist()))))
        )
    return out


def _deleted(refs: list[store.SegmentRef]) -> int:
    return sum(len(ref.deleted) for ref in refs)


def _keep_models(version: Path, building: Path) -> None:
    """The converted and trained models the version carries (queries load them), linked."""
    for path in version.iterdir():
        if path.name.startswith(("openvino", "reducer")) or path.suffix == ".keras":
            if path.is_dir():
                durable.link_tree(path, building / path.name)
            elif not (building / path.name).exists():
                shutil.copy2(path, building / path.name)


def _calibration(version: Path, key: ModelKey) -> np.ndarray | None:
    """The version's edited queries (full vectors), to tune the new segment's depth with."""
    path = version / tuning.CALIBRATION_FILE
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return saved["vectors"] if str(saved["model_key"]) == str(key) else None
