"""What a build's new version holds: the models it carries (so that queries need no TensorFlow), the
files it skipped, its segments, the search depth and label distances it measured, its manifest, and
the copies verified in it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgsim import durable
from imgsim.index import store
from imgsim.indexing import calibrating, describing, segment_layout, verifying, version_writer
from imgsim.indexing.embed_contract import EmbedResult, found_features
from imgsim.indexing.plan import BuildPlan
from imgsim.models import embedders, runtimes

Log = Callable[[str], None]


def write(
    plan: BuildPlan,
    items: list[store.Item],
    vector_of: Callable[[store.Item], np.ndarray],
    result: EmbedResult,
    next_id: int,
    started: float,
    load_embedder: Callable[[], embedders.Embedder],
    verbose: int,
    log: Log,
) -> Path:
    """Write the build's new version (version_writer.py) and publish it; the checkpoints go."""
    cfg, embedder = plan.cfg, plan.embedder

    def fill(building: Path) -> version_writer.Filled:
        if embedder is not None and embedder.trained_files is not None:
            for trained in embedder.trained_files.glob("*.keras"):
                shutil.copy2(trained, building / trained.name)
        for folder in (runtimes.VERSION_FOLDER, runtimes.INT8_FOLDER):
            converted = _conversion_to_keep(plan, folder)
            if converted is not None:  # queries load it without TensorFlow
                runtimes.copy_converted(converted, building / folder)
        durable.write_json(building / "skipped.json", [{"path": p, "reason": r} for p, r in result.skipped])
        layout = segment_layout.lay_out(plan, items)
        found = calibrating.edited_queries(plan, items, building, load_embedder)
        calibration = found.vectors if found is not None else None
        written = segment_layout.write(
            building,
            plan,
            layout,
            vector_of,
            calibration,
            verbose,
            log,
            found_features(result.vectors, plan.resumed),
        )
        rows = store.items_of(building, written.refs)  # the version's rows: its segments' in turn
        log(f"Index: {segment_layout.summary(written.refs)}; {len(written.new)} written by this run.")
        one = np.asarray(vector_of(rows[0]), np.float32)[None, :]
        dims = written.to_index(one).shape[1]
        manifest = describing.make(plan, len(rows), one.shape[1], dims, result, next_id)
        manifest.centre = segment_layout.centring(cfg)
        calibrating.depth_and_labels(manifest, plan, layout, building, written, found, log)
        manifest.build_seconds = round(time.perf_counter() - started, 2)
        manifest.annoy_build_seconds = round(written.annoy_seconds, 2)
        before = plan.current
        fresh = {item.id for item in layout.fresh} if layout.source is not None else None
        source, old_items = (before.version, before.items) if before is not None else (None, [])

        def verify(folder: Path) -> None:
            verifying.verify_copies(folder, rows, source, old_items, fresh, cfg, log)

        return version_writer.Filled(written.refs, manifest, verify, rows)

    version = version_writer.write_version(cfg, fill, plan.before_publish)
    shutil.rmtree(store.partial_dir(cfg.index_dir), ignore_errors=True)
    return version


def _conversion_to_keep(plan: BuildPlan, folder: str = runtimes.VERSION_FOLDER) -> Path | None:
    """The OpenVINO conversion (or, with ``INT8_FOLDER``, the int8 model) the new version carries:
    the one this run embedded with, else the copy the version before carries for the same model
    (a rebuild that only removed files).

    A serving worker's embedder runs the copy in the version it first loaded; once keep_versions
    has pruned that version, its folder is gone, and the current version's copy stands in."""
    int8 = folder == runtimes.INT8_FOLDER
    if int8 and plan.key.precision != "int8":
        return None
    embedder = plan.embedder
    folders = [(embedder.quantized if int8 else embedder.converted)] if embedder is not None else []
    if plan.current is not None and plan.current.manifest.model_key == plan.key:
        folders.append(plan.current.version / folder)
    network = plan.key.at("f32")
    done = runtimes.is_quantized if int8 else runtimes.is_converted
    return next((f for f in folders if f is not None and done(f, network)), None)
