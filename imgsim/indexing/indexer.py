"""Build and rebuild the search index from a collection of images (img2vec.py is its command line).

A build is three stages passing one BuildPlan: ``plan_build`` scans the collection and reads, once,
what the current version and the live layer already know (vectors, ids, deletions); ``embed`` runs
the network on what is new or changed; ``publish`` gives new files ids from the live layer's one
counter and has the version written (contents.py) and ``current`` switched. Ids are identities: a
file keeps its id through every rebuild, whatever the model.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgsim import config
from imgsim.images import imaging
from imgsim.index import merge_policy, store
from imgsim.index.manifest import Manifest
from imgsim.indexing import collection, contents, delta, local_engine, precision, segment_layout
from imgsim.indexing.collection import Known
from imgsim.indexing.embed_contract import EmbedJob, EmbedResult
from imgsim.indexing.plan import BuildOptions, BuildPlan
from imgsim.live import live
from imgsim.models import embedders, pixel_embedders, reducers, reference, runtimes

Log = Callable[[str], None]


def _log(message: str) -> None:
    print(message, file=sys.stderr)  # progress and news go to stderr; results to stdout


@dataclass
class BuildReport:
    version: Path
    items: int
    embedded: int = 0
    measured: int = 0  # of the embedded, those embedded while choosing the precision
    reused: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    embed_seconds: float = 0.0
    seconds: float = 0.0
    up_to_date: bool = False


DEFAULTS = BuildOptions()  # a build with progress bars, news on stderr, nothing forced


def build_index(
    dataset: str | Path,
    cfg: config.Config,
    embedder: embedders.Embedder | None = None,
    *,
    live_store: live.LiveStore | None = None,
    delta_only: bool = False,
    **options: Any,
) -> BuildReport:
    """``build`` (or, ``delta_only``, ``compact``) with the options as keywords (BuildOptions'
    fields): the call img2vec.py, the benches and the tests make."""
    chosen = BuildOptions(embedder=embedder, **options)
    return compact(cfg, chosen, live_store) if delta_only else build(dataset, cfg, chosen, live_store)


def build(
    dataset: str | Path,
    cfg: config.Config,
    options: BuildOptions = DEFAULTS,
    live_store: live.LiveStore | None = None,
) -> BuildReport:
    """Bring the index in ``cfg.index_dir`` up to date with the images under ``dataset``.

    A build keeps the segments of the version before that still hold the same items and writes
    only new ones (segment_layout.py); ``options.full`` re-embeds and rewrites everything,
    ``options.merge`` merges the segments down to the fewest the size limit allows. ``live_store``
    is the running service's; without one, a build opens and closes its own.
    """
    started = time.perf_counter()
    with _store(cfg, live_store) as opened, store.build_lock(cfg.index_dir):
        store.clean(cfg.index_dir, cfg.keep_versions)
        return _build(plan_build(dataset, cfg, opened, options), options, started)


def compact(
    cfg: config.Config, options: BuildOptions = DEFAULTS, live_store: live.LiveStore | None = None
) -> BuildReport:
    """A compaction: the live layer's changes written into the current version without scanning
    the collection (delta.py: the additions as one new segment, the deletions as tombstones), so
    it costs what the delta holds. A version it cannot extend so (one without segments, additions
    made by another model) is rebuilt from its own catalogue instead."""
    started = time.perf_counter()
    with _store(cfg, live_store) as opened, store.build_lock(cfg.index_dir):
        store.clean(cfg.index_dir, cfg.keep_versions)
        current, read_at = collection.read_previous(cfg.index_dir), time.time()
        state = opened.read()
        if current is not None and delta.can_compact(current, state):
            version, count, added = delta.compact(
                cfg, current, opened, state, read_at, options.log, options.before_publish
            )
            return BuildReport(version, count, reused=added, seconds=time.perf_counter() - started)
        dataset = current.manifest.dataset or current.manifest.collection_root if current else ""
        return _build(plan_build(dataset, cfg, opened, options, catalogue_only=True), options, started)


@contextlib.contextmanager
def _store(cfg: config.Config, given: live.LiveStore | None) -> Iterator[live.LiveStore]:
    """The running service's live store, else one of the build's own, closed after it."""
    if given is not None:
        yield given
        return
    with contextlib.closing(live.open_store(cfg.index_dir, cfg.live_url)) as own:
        yield own


def _build(plan: BuildPlan, options: BuildOptions, started: float) -> BuildReport:
    log = options.log
    plan.before_publish, plan.merge = options.before_publish, options.merge
    plan.up_to_date = plan.up_to_date and not _mergeable(plan, force=options.merge)
    if plan.up_to_date and plan.current is not None:  # up to date: a version is there
        log(f"Index is up to date: {len(plan.entries)} images, nothing to embed.")
        count, seconds = len(plan.entries), time.perf_counter() - started
        refused = list(plan.refused)  # a link out added since is refused, and said, all the same
        return BuildReport(
            plan.current.version, count, reused=count, skipped=refused, seconds=seconds, up_to_date=True
        )
    log(
        f"{len(plan.entries)} images in {plan.root}: {len(plan.unchanged)} unchanged, "
        f"{len(plan.to_embed)} to embed" + (f", {plan.removed} removed" if plan.removed else "")
    )
    result = embed(plan, options.progress, log)
    return publish(plan, result, started, options.verbose, log)


def plan_build(
    dataset: str | Path,
    cfg: config.Config,
    live_store: live.LiveStore,
    options: BuildOptions = DEFAULTS,
    catalogue_only: bool = False,
) -> BuildPlan:
    """Scan the collection (or, ``catalogue_only``, take the current version's catalogue) and
    decide what to embed, from what earlier runs and the service know."""
    embedder, full, log = options.embedder, options.full, options.log
    current = collection.read_previous(cfg.index_dir) if catalogue_only else None
    refused: list[tuple[str, str]] = []
    if current is not None:
        root, entries = Path(current.manifest.collection_root), collection.catalogued(current)
    else:
        root, entries, refused = collection.scan(dataset)
    live_read_at = time.time()
    state = live_store.read()  # after the scan: see collection.indexable
    current = current or collection.read_previous(cfg.index_dir)  # read once: ids and vectors come from it
    catalogue = collection.previous_ids(current, root)
    ids = catalogue | {addition.path: addition.id for addition in state.additions.values()}
    entries = collection.indexable(entries, root, state.deleted_paths, set(state.additions), ids)
    if not entries:
        raise FileNotFoundError(
            f"no images found in {dataset} (looked for {', '.join(sorted(imaging.IMAGE_EXTENSIONS))})"
        )
    if embedder is None and cfg.model in reducers.PIXEL_MODELS:
        sample = collection.training_sample(entries, cfg.ae_train_images)

        def images(side: int, limit: int) -> np.ndarray:
            threads = config.decode_threads(cfg)
            return collection.decode_square(sample[:limit], side, cfg.max_image_pixels, threads)

        before = (current.version, current.manifest) if current else None
        embedder = pixel_embedders.trained_on_collection(
            cfg, root, images, options.retrain, options.plot, options.verbose, log, before
        )
    weights = embedders.weights_setting(cfg.weights)
    network_key = embedder.key.at("f32") if embedder else None
    network_key = network_key or embedders.model_key(*_model_settings(cfg, weights))
    choice = precision.decide(cfg, entries, current, network_key, embedder, log)
    embedder = embedder or choice.embedder
    key = embedder.key if embedder else network_key.at(choice.precision)
    known = {} if full else collection.known_vectors(cfg.index_dir, current, key, root)
    for addition in state.additions.values():
        if addition.model_key == str(key) and not full:  # --full re-embeds uploads too
            known.setdefault(
                addition.path, Known(addition.size, addition.mtime_ns, addition.sha1, addition.vector)
            )
    unchanged = {
        e.path: (known[e.path].sha1, known[e.path].vector)
        for e in entries
        if e.path in known and (known[e.path].size, known[e.path].mtime_ns) == (e.size, e.mtime_ns)
    }
    plan = BuildPlan(
        cfg,
        str(dataset),
        root,
        entries,
        key,
        embedder,
        unchanged,
        to_embed=[e for e in entries if e.path not in unchanged],
        known_sha1={path: (k.sha1, k.vector) for path, k in known.items()},
        ids=ids,
        current=current,
        refused=refused,
        live_state=state,
        live_store=live_store,
        live_read_at=live_read_at,
        removed=len(set(catalogue) - {e.path for e in entries}),
        precision=choice,
        full=full,
        resumed={path: k.features for path, k in known.items() if path in unchanged and k.features},
    )
    plan.up_to_date = _up_to_date(plan)
    return plan


def _model_settings(cfg: config.Config, weights: str | None) -> tuple[str, str | None, int, str, bool]:
    return cfg.model, weights, cfg.image_size, cfg.pooling, cfg.trim_borders


def _up_to_date(plan: BuildPlan) -> bool:
    previous, cfg = plan.previous, plan.cfg
    return (
        previous is not None
        and not plan.to_embed
        and not plan.removed
        and previous.model_key == plan.key
        and (previous.reduce, previous.trees, previous.metric) == (cfg.reduce, cfg.trees, cfg.metric)
        and (cfg.reduce == "none" or previous.dims == cfg.dims)
        and previous.items == len(plan.entries)
        and previous.centre == segment_layout.centring(cfg)
        and previous.recall_target == (cfg.target_recall if cfg.recall_sample > 0 else None)
        and (previous.thresholds is not None or cfg.recall_sample <= 0 or cfg.metric == "dot")
        and (not previous.thresholds or _stated_reference(previous) == _reference_of(plan))
    )


def _stated_reference(manifest: Manifest) -> dict:
    return manifest.thresholds.reference if manifest.thresholds is not None else {}


def _reference_of(plan: BuildPlan) -> dict:
    """The model's reference as a build would state it now (one measured since: a new version)."""
    found = reference.find(plan.key, runtimes.cache_root(plan.cfg.model_cache))
    return found.to_dict() if found is not None else {}


def _mergeable(plan: BuildPlan, force: bool) -> bool:
    """Whether the merge policy (or --merge, ``force``) has segments to merge in the current
    version: then a run with nothing new to embed still writes a version."""
    if plan.current is None:
        return False
    refs = store.read_segments(plan.current.version)
    return bool(merge_policy.merges(refs, segment_layout.policy_of(plan.cfg), force=force))


def embed(plan: BuildPlan, progress: bool = True, log: Log = _log) -> EmbedResult:
    """Run the network on the plan's new and changed files, checkpointing as it goes; the photos
    that choosing the precision embedded at the chosen one are not embedded again (their local
    features, found then, are kept too)."""
    measured = plan.precision.vectors if plan.precision else {}
    done = {e.path: measured[e.path] for e in plan.to_embed if e.path in measured}
    rest = [e for e in plan.to_embed if e.path not in done]
    result = _run(plan, rest, progress, log) if rest else EmbedResult()
    result.vectors.update(done)
    found = plan.precision.features if plan.precision else {}
    result.vectors.found.update({path: found[path] for path in done if path in found})
    result.embedded += len(done)
    result.measured = len(done)
    return result


def _run(plan: BuildPlan, entries: list, progress: bool, log: Log) -> EmbedResult:
    cfg = plan.cfg
    embedder = _embedder(plan, log)
    side, runtime = embedder.input_size, embedder.runtime
    log(f"Model {embedder.name} on {runtime}: {side}x{side} in, {embedder.dim}-d out")
    save = functools.partial(collection.save_checkpoint, cfg.index_dir, plan.key, plan.root)
    job = EmbedJob(entries, embedder, cfg, str(plan.root), plan.known_sha1, save, progress, log)
    if cfg.engine == "ray":
        from imgsim.indexing import rayengine

        return rayengine.embed_files(job)
    return local_engine.embed_files(job)


def publish(
    plan: BuildPlan, result: EmbedResult, started: float, verbose: int = 2, log: Log = _log
) -> BuildReport:
    """Number the new files, write the version (its segments) and switch ``current``."""
    vectors_by_path = collections.ChainMap(result.vectors, plan.unchanged)  # read as asked: no copy
    kept = [e for e in plan.entries if e.path in vectors_by_path]
    if not kept:
        raise RuntimeError("none of the images could be read; nothing to index")
    live_store = plan.live_store
    new = [e for e in kept if e.path not in plan.ids]
    floor = max([plan.previous.next_id if plan.previous else 0, *(i + 1 for i in plan.ids.values())])
    first = live_store.allocate_ids(len(new), floor)  # the one authority, shared with the uploads
    ids = plan.ids | {e.path: first + n for n, e in enumerate(new)}
    sha1s = {path: sha1 for path, (sha1, _) in plan.unchanged.items()} | result.vectors.sha1s()
    items = [store.Item(ids[e.path], e.path, e.size, e.mtime_ns, sha1s[e.path]) for e in kept]
    result.skipped[:0] = plan.refused  # reported with the unreadable files, in skipped.json too

    def vector_of(item: store.Item) -> np.ndarray:
        return vectors_by_path[item.path][1]

    load = functools.partial(_embedder, plan, log)
    version = contents.write(plan, items, vector_of, result, first + len(new), started, load, verbose, log)
    live_store.mark_compacted({item.id for item in items if item.path in plan.live_state.additions})
    return BuildReport(
        version,
        len(items),
        embedded=result.embedded,
        measured=result.measured,
        reused=len(plan.unchanged) + (len(result.vectors) - result.embedded),
        removed=plan.removed,
        skipped=result.skipped,
        embed_seconds=result.seconds,
        seconds=time.perf_counter() - started,
    )


def _embedder(plan: BuildPlan, log: Log) -> embedders.Embedder:
    """The plan's model, loaded at the plan's precision the first time it is needed."""
    if plan.embedder is None:
        chosen = plan.precision.precision if plan.precision else "f32"
        plan.embedder = precision.load_at(plan.cfg, chosen, plan.current, log)
    return plan.embedder
