"""How a build writes a version's segments: keep what is unchanged, write what is new, merge.

A build whose version before holds the same model in the same index space (reduction, centring,
trees, metric) keeps that version's segments: each is linked into the new version, rows whose
file changed or went away get tombstones, and only the new and changed files are written, as new
segments. The merge policy (index/merge_policy.py) then picks segments to merge. A first build,
``--full``, or a change of model or index space writes every item anew, in segments of at most
``segment_items`` (so a build's Annoy memory is bounded by one segment's).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsim import config, durable
from imgsim.index import keypoints, merge_policy, migrate, segments, store
from imgsim.index import vectors as vector_math
from imgsim.indexing import verifying
from imgsim.indexing.plan import BuildPlan
from imgsim.models import reducers
from imgsim.search import annoy_index, tuning

Log = Callable[[str], None]
ToIndex = Callable[[np.ndarray], np.ndarray]
SPACE_FILES = (annoy_index.CENTRE_FILE, "reducer_pca.npz", "reducer_whiten.npz", "reducer_autoencoder.keras")


@dataclass
class Layout:
    """The segments a new version keeps from the one before, and the items it writes anew."""

    kept: list[store.SegmentRef]
    fresh: list[store.Item]
    source: Path | None  # the version the kept segments come from


@dataclass
class Written:
    """What writing the segments made: the version's segments, the ones this build wrote, and
    what maps an embedding into the index's space."""

    refs: list[store.SegmentRef]
    new: list[str]
    to_index: ToIndex
    annoy_seconds: float


def policy_of(cfg: config.Config) -> merge_policy.MergePolicy:
    return merge_policy.MergePolicy(per_tier=cfg.segments_per_tier, max_items=cfg.segment_items)


def centring(cfg: config.Config) -> str:
    """The centring a version gets: the setting's, unless a reducer maps the vectors (PCA centres
    on its own terms, the autoencoder not at all)."""
    return cfg.centre if cfg.reduce == "none" else "none"


def can_keep(plan: BuildPlan) -> bool:
    """Whether the version before's segments hold this build's vectors in this build's space."""
    before, cfg = plan.previous, plan.cfg
    return (
        before is not None
        and plan.current is not None
        and not plan.full
        and migrate.is_segmented(plan.current.version)
        and (before.model_key, before.collection_root) == (plan.key, str(plan.root))
        and (before.reduce, before.trees, before.metric) == (cfg.reduce, cfg.trees, cfg.metric)
        and (cfg.reduce == "none" or before.dims == cfg.dims)
        and before.centre == centring(cfg)
    )


def lay_out(plan: BuildPlan, items: list[store.Item]) -> Layout:
    """Which rows of the version before stay (an item the same in every field), which get a
    tombstone, and which items are new."""
    if not can_keep(plan):
        return Layout([], items, None)
    assert plan.current is not None  # can_keep checked it
    version = plan.current.version
    wanted = {item.id: item for item in items}
    kept, covered = [], set()
    for ref in store.read_segments(version):
        deleted = set(ref.deleted)
        for local, old in enumerate(store.segment_items(version, ref)):
            if local in deleted:
                continue
            if wanted.get(old.id) != old or old.id in covered:
                deleted.add(local)
            else:
                covered.add(old.id)
        kept.append(store.SegmentRef(ref.name, ref.count, tuple(sorted(deleted))))
    return Layout(kept, [item for item in items if item.id not in covered], version)


def write(
    building: Path,
    plan: BuildPlan,
    layout: Layout,
    vector_of: Callable[[store.Item], np.ndarray],
    calibration: np.ndarray | None,
    verbose: int,
    log: Log,
    found: verifying.Found | None = None,
) -> Written:
    """Link the kept segments, write the fresh items as new segments, run the merges the policy
    asks for (all with ``plan.merge``), and return the version's segments in row order. Each new
    segment's depth is tuned with the ``calibration`` queries (full embeddings) where given; its
    items' local features are those ``found`` while embedding them where they were."""
    for ref in layout.kept:  # kept segments come from a source version
        assert layout.source is not None
        durable.link_tree(store.segment_dir(layout.source, ref.name), store.segment_dir(building, ref.name))
    to_index = _index_space(plan, layout, vector_of, building, verbose, log)
    features = verifying.plan_features(plan, found)
    cfg = plan.cfg
    return write_segments(building, cfg, layout, vector_of, to_index, features, calibration, plan.merge, log)


def write_segments(
    building: Path,
    cfg: config.Config,
    layout: Layout,
    vector_of: Callable[[store.Item], np.ndarray],
    to_index: ToIndex,
    features: Callable[[list[store.Item]], list],
    calibration: np.ndarray | None,
    merge: bool,
    log: Log,
) -> Written:
    """The fresh items as new segments beside the kept ones (already linked into ``building``),
    then the merges the policy asks for (all, with ``merge``)."""
    queries = to_index(calibration) if calibration is not None and len(calibration) else np.zeros((0, 1))

    def write_one(items: list[store.Item], vectors: np.ndarray, found: list):
        return _write_one(building, items, vectors, to_index, found, queries, cfg, log)

    chunks = [layout.fresh[i : i + cfg.segment_items] for i in range(0, len(layout.fresh), cfg.segment_items)]
    if cfg.engine == "ray" and len(chunks) > 1:
        written = _on_ray(building, chunks, vector_of, to_index, features, queries, cfg, log)
    else:
        written = [write_one(chunk, _stack(chunk, vector_of), features(chunk)) for chunk in chunks]
    refs, new = list(layout.kept) + [ref for ref, _ in written], [ref.name for ref, _ in written]
    seconds = sum(took for _, took in written)
    for group in merge_policy.merges(refs, policy_of(cfg), force=merge):
        refs, made, took = _merge(building, refs, group, write_one, log)
        new = [name for name in new if name not in group] + ([made] if made else [])
        seconds += took
    return Written(refs, new, to_index, seconds)


def _stack(items: list[store.Item], vector_of: Callable[[store.Item], np.ndarray]) -> np.ndarray:
    return np.stack([vector_of(item) for item in items]).astype(np.float32)


def _write_one(
    building: Path,
    items: list[store.Item],
    vectors: np.ndarray,
    to_index: ToIndex,
    found: list,
    queries: np.ndarray,
    cfg: config.Config,
    log: Log,
) -> tuple[store.SegmentRef, float]:
    """One new segment: Annoy, features, and the depth tuned for it on the calibration queries."""
    folder, index_vectors, took = _write_files(building, items, vectors, to_index, found, cfg, log)
    ref = store.SegmentRef(folder.name, len(items))
    return ref, _tune(folder, len(items), index_vectors, queries, took, cfg, log)


def _write_files(
    building: Path,
    items: list[store.Item],
    vectors: np.ndarray,
    to_index: ToIndex,
    found: list,
    cfg: config.Config,
    log: Log,
    annoy: bool = True,
) -> tuple[Path, np.ndarray, float]:
    """A new segment's items, vectors, features and (unless ``annoy`` is False: a Ray task
    builds it) Annoy index; its folder, its vectors in the index's space and Annoy's seconds."""
    folder = store.segment_dir(building, segments.new_name())
    index_vectors = to_index(vectors)
    built = f"{cfg.trees} trees" if annoy else "its Annoy index built by a Ray task"
    log(f"Writing segment {folder.name}: {len(items)} vectors x {index_vectors.shape[1]} dims, {built} ...")
    took = segments.write(folder, items, vectors, index_vectors, cfg.metric, cfg.trees, annoy=annoy)
    keypoints.save(folder, found)
    return folder, index_vectors, took


def _on_ray(
    building: Path,
    chunks: list[list[store.Item]],
    vector_of: Callable[[store.Item], np.ndarray],
    to_index: ToIndex,
    features: Callable[[list[store.Item]], list],
    queries: np.ndarray,
    cfg: config.Config,
    log: Log,
) -> list[tuple[store.SegmentRef, float]]:
    """The new segments' Annoy builds as Ray tasks, in parallel across the cluster (the index
    directory on a file system every node mounts at the same path, like the collection); the
    driver writes the rest of each segment meanwhile, one segment's vectors in memory at a time."""
    from imgsim.indexing import rayengine

    made = []
    with rayengine.annoy_builds(cfg, log) as submit:
        pending = []
        for chunk in chunks:  # one segment's vectors in memory at a time, the Ray object store aside
            folder, index_vectors, _ = _write_files(
                building, chunk, _stack(chunk, vector_of), to_index, features(chunk), cfg, log, annoy=False
            )
            pending.append((folder, len(chunk), submit(index_vectors, folder / segments.ANNOY_FILE)))
            del index_vectors
        for folder, count, task in pending:
            took = task()
            index_vectors = to_index(durable.read_array(folder / store.VECTORS_FILE))
            made.append(
                (
                    store.SegmentRef(folder.name, count),
                    _tune(folder, count, index_vectors, queries, took, cfg, log),
                )
            )
    return made


def _tune(
    folder: Path,
    count: int,
    index_vectors: np.ndarray,
    queries: np.ndarray,
    took: float,
    cfg: config.Config,
    log: Log,
) -> float:
    """The depth a new segment needs, measured and written beside it; returns ``took``."""
    curve = tuning.calibrate_segment(folder / segments.ANNOY_FILE, index_vectors, queries, cfg)
    depth = curve.search_k if curve is not None else -1
    segments.keep_for_exact_search(folder, index_vectors, depth)
    segments.describe(folder, count, depth, curve.to_dict() if curve else {}, annoy_seconds=round(took, 2))
    if curve is not None:
        chosen = "exact search" if depth == 0 else f"search_k {depth}"
        reached = f"recall@{curve.k} {curve.recall:.3f}, {curve.ms:.2f} ms a query"
        log(f"Segment {folder.name}: {chosen} ({reached}).")
    return took


def _merge(
    building: Path, refs: list[store.SegmentRef], group: list[str], write_one, log: Log
) -> tuple[list[store.SegmentRef], str | None, float]:
    """Write the live rows of the segments in ``group`` as one segment, in the place of the first."""
    members = [ref for ref in refs if ref.name in group]
    items, vectors, found = [], [], []
    for ref in members:
        folder, rows = store.segment_dir(building, ref.name), store.live_rows(ref)
        written = store.segment_items(building, ref)
        items += [written[r] for r in rows]
        stored_vectors = durable.read_array(folder / store.VECTORS_FILE, mapped=True)
        vectors.append(np.asarray(stored_vectors[rows], np.float32))
        stored = keypoints.Keypoints(folder) if migrate.has_features(folder) else None
        found += [stored.get(int(r)) if stored is not None else None for r in rows]
    at = refs.index(members[0])
    rest = [ref for ref in refs if ref.name not in group]
    made, took = None, 0.0
    if items:
        log(f"Merging {len(members)} segments ({len(items)} live items) into one ...")
        ref, took = write_one(items, np.concatenate(vectors), found)
        rest.insert(min(at, len(rest)), ref)
        made = ref.name
    for ref in members:
        shutil.rmtree(store.segment_dir(building, ref.name))
    return rest, made, took


def _index_space(
    plan: BuildPlan,
    layout: Layout,
    vector_of: Callable[[store.Item], np.ndarray],
    building: Path,
    verbose: int,
    log: Log,
) -> ToIndex:
    """What maps embeddings to the vectors Annoy holds (centring, or a reducer): the version
    before's where its segments are kept, else fitted now on every vector, stored in the version."""
    cfg = plan.cfg
    if layout.source is not None:
        return same_space(cfg, layout.source, building)
    if cfg.reduce == "none" and centring(cfg) != "mean":
        return lambda v: np.asarray(v, np.float32)
    vectors = _stack(layout.fresh, vector_of)
    if cfg.reduce == "none":
        np.save(building / annoy_index.CENTRE_FILE, vector_math.mean_direction(vectors))
    else:
        fitted = reducers.fit_for_build(cfg.reduce, vectors, cfg, plan.key, log=log, verbose=verbose)
        reducers.save_reducer(cfg.reduce, fitted, building)
    return load_space(cfg, building)


def same_space(cfg: config.Config, source: Path, building: Path) -> ToIndex:
    """The index space of version ``source``, copied into ``building`` (whose segments it keeps)."""
    for name in SPACE_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, building / name)
    return load_space(cfg, building)


def load_space(cfg: config.Config, building: Path) -> ToIndex:
    if cfg.reduce != "none":
        reducer = reducers.load_reducer(cfg.reduce, building)
        assert reducer is not None  # a reducing build wrote it
        return reducer
    if centring(cfg) != "mean":
        return lambda v: np.asarray(v, np.float32)
    mean = durable.read_array(building / annoy_index.CENTRE_FILE)
    return lambda v: vector_math.centred(v, mean)


def summary(refs: list[store.SegmentRef]) -> str:
    live = sorted((ref.live for ref in refs), reverse=True)
    return f"{len(refs)} segment(s) of {', '.join(map(str, live[:8]))}{' ...' if len(live) > 8 else ''} items"
