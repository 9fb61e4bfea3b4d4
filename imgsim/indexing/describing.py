"""What a new version says about itself: the model, its settings and what the run did (manifest.json)."""

from __future__ import annotations

import os
import time

from imgsim.index.manifest import Manifest, PrecisionRecord
from imgsim.indexing.embed_contract import EmbedResult
from imgsim.indexing.plan import BuildPlan
from imgsim.models import embedders


def _weights_of(embedder: embedders.Embedder) -> str:
    """Where the weights came from when no --weights applied: inside a model file, or random."""
    return "none" if embedder.source in embedders.BACKBONES else "file"


def make(
    plan: BuildPlan, items: int, embedding_dim: int, dims: int, result: EmbedResult, next_id: int
) -> Manifest:
    cfg, embedder = plan.cfg, plan.embedder
    same_model = plan.previous if plan.previous and plan.previous.model_key == plan.key else None
    if embedder is not None:
        model, source, weights = embedder.name, embedder.source, embedder.weights or _weights_of(embedder)
        input_size: int | None = embedder.input_size
    elif same_model is not None:  # nothing embedded: the model is the one of the version before
        model, source, weights = same_model.model, same_model.model_source, same_model.weights
        input_size = same_model.input_size
    else:
        model, source, weights, input_size = cfg.model, cfg.model, cfg.weights, None
    # the runtime that made this run's vectors, else the one that made the reused ones
    runtime = embedder.runtime if embedder is not None else same_model.runtime if same_model else cfg.runtime
    return Manifest(
        precision=plan.key.precision,
        precision_choice=precision_record(plan),
        model=model,
        model_source=source,
        model_key=plan.key,
        weights=weights,
        input_size=input_size,
        embedding_dim=int(embedding_dim),
        reduce=cfg.reduce,
        dims=int(dims),
        metric=cfg.metric,
        trees=cfg.trees,
        items=items,
        skipped=len(result.skipped),
        next_id=next_id,
        collection_root=str(plan.root),
        dataset=os.path.abspath(plan.dataset),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        embedded_this_run=result.embedded,
        live_read_at=plan.live_read_at,
        runtime=runtime,
        engine=result.engine,
        engine_actors=result.actors,
        engine_nodes=result.nodes,
    )


def precision_record(plan: BuildPlan) -> PrecisionRecord | None:
    """Why the vectors have their precision: what the run measured, or the version before's record
    where the precision was kept from it (or given by a compaction's model)."""
    choice, previous = plan.precision, plan.previous
    if choice is None or (choice.how in ("kept", "given") and previous and previous.model_key == plan.key):
        return previous.precision_choice if previous and previous.model_key == plan.key else None
    return choice.record(plan.cfg.precision)
