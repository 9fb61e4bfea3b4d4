"""The build's verified copies: each new item's local features (reused from the version before
where it holds the same contents), its candidate pairs checked by geometry, and the pairs the
version before verified between items it keeps carried over, so a rebuild checks only what is new."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgsim import config
from imgsim.duplicates import copy_pairs, finding, pair_evidence
from imgsim.images import geometry, shared_features
from imgsim.index import keypoints, store
from imgsim.indexing.plan import BuildPlan
from imgsim.search import annoy_index

Log = Callable[[str], None]


Found = Callable[[str], geometry.Features | None]  # path -> features found while embedding, or None


def plan_features(plan: BuildPlan, found: Found | None = None) -> Callable[[list[store.Item]], list]:
    """Each fresh item's local features: the version before's where it holds the same contents
    (a --full rebuild, a model change), else those ``found`` while embedding it, else computed
    from the file."""
    if plan.current is None:
        return feature_source(plan.root, plan.cfg, None, {}, found)
    before = keypoints.load(plan.current.version)
    rows_before = {item.sha1: row for row, item in enumerate(plan.current.items)} if before else {}
    return feature_source(plan.root, plan.cfg, before, rows_before, found)


def feature_source(
    root: Path,
    cfg: config.Config,
    before: keypoints.VersionKeypoints | None = None,
    rows_before: dict | None = None,
    found: Found | None = None,
) -> Callable[[list[store.Item]], list]:
    """Features of items' files, computed in threads (OpenCV and PIL release the GIL), or taken
    from ``before`` where it holds the same contents (``rows_before``: sha1 -> its row), or as
    ``found`` while embedding."""
    rows_before = rows_before or {}

    def features(chunk: list[store.Item]) -> list:
        compute = pair_evidence.features_of(root, chunk, cfg.max_image_pixels)

        def one(row: int):
            kept = rows_before.get(chunk[row].sha1)
            if before is not None and kept is not None and kept < len(before):
                return before.get(kept)
            embedded = found(chunk[row].path) if found is not None else None
            return embedded if embedded is not None else compute(row)

        with ThreadPoolExecutor(max_workers=config.decode_threads(cfg)) as pool:
            return list(pool.map(one, range(len(chunk))))

    return features


def verify_copies(
    building: Path,
    items: list[store.Item],
    before: Path | None,
    old_items: list[store.Item],
    fresh: set[int] | None,
    cfg: config.Config,
    log: Log,
) -> None:
    """The version's verified copies: every candidate pair of the ``fresh`` items (ids; None: of
    every item), and the pairs version ``before`` (its items ``old_items``) verified between the
    items it keeps, whose verdicts stand for later builds."""
    started = time.perf_counter()
    known = copy_pairs.verdicts_of(before)
    opened = annoy_index.open_version(building, items)
    stored = keypoints.load(building)
    assert stored is not None  # the build wrote every segment's features
    if fresh is not None:
        fresh = _with_pending(fresh, before, set(opened.rows_by_id))
    rows = None if fresh is None else [opened.rows_by_id[i] for i in sorted(fresh)]
    redo = before is not None and bool(known) and copy_pairs.checks_of(before) < copy_pairs.CHECKS
    if redo:  # once: every row's candidates, pieces among them; matches looked at again
        known = {key: verdict for key, verdict in known.items() if verdict is None or verdict.shot}
        rows = None
        log("Copies: verdicts reached by an older version's checks are reached again, once.")
    stored_before = copy_pairs.load(before) if before is not None and rows is not None else None
    pairs_before = stored_before[1] if stored_before is not None else []
    if rows is not None:  # pairs verified before the pictures' agreement was checked: checked again
        rows += unchecked_rows(pairs_before, old_items, opened.rows_by_id)
    descriptors = _descriptors(stored, log)
    reach, pairs, verdicts = finding.verified_pairs(
        opened, cfg.max_image_pixels, known, stored.get, rows, stored.hashes, descriptors, redo, log
    )
    checked = len(set(verdicts) - set(known))
    if rows is not None:  # the builds before checked the rest
        pairs += carried_pairs(pairs_before, old_items, opened.rows_by_id, rows)
        verdicts = known | verdicts
    copy_pairs.save(building, pairs, reach, verdicts, items)
    near = sum(1 for pair in pairs if pair.match is not None)
    log(
        f"Copies: {near} verified pairs within {reach:.4f}, {len(pairs) - near} of the same bytes; "
        f"{checked} candidate pairs checked ({time.perf_counter() - started:.1f} s)."
    )


def carry_copies(
    building: Path,
    items: list[store.Item],
    before: Path,
    old_items: list[store.Item],
    fresh: set[int],
) -> bool:
    """The version's copies as far as the version ``before`` checked them, with the ``fresh`` items
    (ids) pending: a compaction publishes first and checks those just after (check_pending), so
    that what it costs before its additions are served is its delta's own. False, writing nothing,
    where the version before holds no copies or verdicts of older checks: a build then verifies
    before it publishes."""
    stored_before = copy_pairs.load(before)
    if stored_before is None or copy_pairs.checks_of(before) < copy_pairs.CHECKS:
        return False
    reach, pairs_before = stored_before
    rows = {item.id: row for row, item in enumerate(items)}
    if unchecked_rows(pairs_before, old_items, rows):
        return False
    pending = _with_pending(fresh, before, set(rows))
    pairs = copy_pairs.same_bytes(items)
    pairs += carried_pairs(pairs_before, old_items, rows, [rows[i] for i in pending])
    copy_pairs.save(building, pairs, reach, copy_pairs.verdicts_of(before), items, pending)
    return True


def _with_pending(fresh: Iterable[int], before: Path | None, ids: set[int]) -> set[int]:
    """The ``fresh`` items' ids and those the version ``before`` was published with unchecked (a
    compaction's, pending_of), of the ``ids`` the new version still holds: the items to check."""
    return (set(fresh) | copy_pairs.pending_of(before)) & ids


def check_pending(version: Path, cfg: config.Config, log: Log) -> None:
    """The copies of the items a published version holds unchecked (carry_copies), checked in that
    version and written into its copies.json in one step; the other pairs stand as they are."""
    items = store.read_items(version)
    verify_copies(version, items, version, items, set(), cfg, log)


def _descriptors(stored: keypoints.VersionKeypoints, log: Log) -> tuple[np.ndarray, np.ndarray] | None:
    """Every row's descriptors, to propose the pairs that share local features; None, and a line
    that says so, where there are too many to look at (images/shared_features.py)."""
    count = stored.descriptor_count()
    if count > shared_features.MAX_DESCRIPTORS:
        log(
            f"Shared local features not looked at: {count:,} descriptors, more than "
            f"{shared_features.MAX_DESCRIPTORS:,} (copies the embedding puts far may be missed)."
        )
        return None
    return stored.all_descriptors()


def unchecked_rows(
    before: list[copy_pairs.Pair], old_items: list[store.Item], rows: Mapping[int, int]
) -> list[int]:
    """This version's rows (``rows``: its row of each item id) of the items in pairs that the
    version before (its pairs ``before``, its items ``old_items``) verified without checking that
    their pictures agree beyond the matched points (built before that check). The callers hold
    ``rows`` already: building it again here cost a compaction 0.3 s a call at a million items."""
    unchecked = {
        rows[old_items[end].id]
        for pair in before
        if pair.match is not None and not pair.match.checked
        for end in (pair.a, pair.b)
        if old_items[end].id in rows
    }
    return sorted(unchecked)


def carried_pairs(
    before: list[copy_pairs.Pair], old_items: list[store.Item], rows: Mapping[int, int], fresh: Iterable[int]
) -> list[copy_pairs.Pair]:
    """The verified pairs of the version before (its pairs ``before``, its items ``old_items``)
    between items this version (``rows``: its row of each item id) keeps unchanged, less those of
    the ``fresh`` rows."""
    skip = set(fresh)
    found = []
    for pair in before:
        if pair.match is None:
            continue  # pairs of the same bytes are found again over every row
        a, b = rows.get(old_items[pair.a].id), rows.get(old_items[pair.b].id)
        if a is not None and b is not None and a not in skip and b not in skip:
            found.append(copy_pairs.Pair(a, b, pair.distance, pair.match))
    return found
