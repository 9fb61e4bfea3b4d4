"""What a build measures on its own collection: the edited queries that tune each new segment's
search depth, the depth and recall the manifest states, and the distances of the match labels.

A rebuild reuses the version before's edited queries where they still apply, and keeps its labels
where its segments are kept, so that measuring costs what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgsim import durable
from imgsim.index import segments, store
from imgsim.index.manifest import Manifest
from imgsim.index.recall import RecallCurve
from imgsim.indexing import segment_layout
from imgsim.indexing.plan import BuildPlan
from imgsim.models import reference, runtimes
from imgsim.models.embedders import Embedder
from imgsim.search import tuning

Log = Callable[[str], None]


def edited_queries(
    plan: BuildPlan, items: list[store.Item], building: Path, embedder: Callable[[], Embedder]
) -> tuning.EditedQueries | None:
    """The edited queries that tune each new segment's depth (and, in a first build, the match
    labels): the version before's where they still apply, else new ones embedded now."""
    cfg = plan.cfg
    if cfg.recall_sample <= 0 or cfg.metric == "dot":
        return None
    previous = plan.current.version if plan.current else None
    found = tuning.reusable(previous, plan.key, items, cfg.recall_sample)
    if found is None:
        found = tuning.edited_vectors(plan.root, items, embedder(), cfg)
    tuning.save(building, plan.key, items, found)
    return found


def depth_and_labels(
    manifest: Manifest,
    plan: BuildPlan,
    layout: segment_layout.Layout,
    building: Path,
    written: segment_layout.Written,
    found: tuning.EditedQueries | None,
    log: Log,
) -> None:
    """The manifest's depth and recall (those of the largest segment) and the match labels'
    distances: measured on the largest segment this run wrote, or kept from the version before
    where its segments are kept."""
    before = plan.previous
    largest = max(written.refs, key=lambda ref: ref.live)
    folder = store.segment_dir(building, largest.name)
    described = durable.read_json(folder / segments.SEGMENT_FILE)
    manifest.search_k = described["search_k"]
    manifest.recall = RecallCurve.from_dict(described["recall"]) if described["recall"] else None
    known = reference.find(manifest.model_key, runtimes.cache_root(plan.cfg.model_cache))
    if layout.source is not None and before is not None and before.thresholds is not None:
        manifest.thresholds = before.thresholds.with_reference(known)
        return
    if found is None or not len(found.ids):
        log("Search depth and match labels not measured (no readable images, or metric dot).")
        return
    index_vectors = written.to_index(durable.read_array(folder / store.VECTORS_FILE))
    thresholds = tuning.thresholds_of(
        folder / segments.ANNOY_FILE,
        index_vectors,
        store.segment_items(building, largest),
        written.to_index(found.vectors),
        found,
        manifest.search_k,
        plan.cfg.metric,
    )
    thresholds = thresholds.with_reference(known) if thresholds else None
    manifest.thresholds = thresholds
    if thresholds:
        log(
            f"Copies looked for within {thresholds.duplicate} (calibrated on this collection); "
            f"labels: {reference.describe(known)}."
        )
