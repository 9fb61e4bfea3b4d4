"""Embed on a Ray cluster (``--engine ray``): Ray Data streams file references through a pool of
embedder actors, each with the model loaded once.

The driver (img2vec.py) still scans, plans and publishes exactly as with the in-process engine
(local_engine.py); only the network moves, and the local features found from the same decode
(embed_contract.local_features), which the driver would otherwise find reading every file again.
Results stream back as they are made and are checkpointed, so a killed driver resumes with what
was done; an actor that dies is restarted and its batch retried by Ray. Every node reads the
files itself: the collection must be on a shared file system, at the same path on every node.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from imgsim import config
from imgsim.images import imaging
from imgsim.index import keypoints
from imgsim.index.model_key import ModelKey
from imgsim.indexing.collection import FileEntry
from imgsim.indexing.embed_contract import EmbedJob, EmbedResult, collecting, local_features
from imgsim.models import embedders, runtimes


class CollectionUnreadable(RuntimeError):
    """A Ray node cannot read the collection (it is not on a shared file system there)."""


class EmbedActor:
    """One per actor: loads the model once, then embeds batches of files by path."""

    def __init__(
        self,
        model: str,
        weights: str | None,
        image_size: int,
        key: ModelKey,
        max_pixels: int,
        root: str,
        runtime: str = "tensorflow",
        model_cache: str = "",
        threads: int = 0,
        precision: str = "f32",
        quantized: dict[str, bytes] | None = None,
        max_bytes: int = imaging.MAX_FILE_BYTES,
    ):
        if not os.access(root, os.R_OK | os.X_OK):
            raise CollectionUnreadable(
                f"node {socket.gethostname()} cannot read the collection root {root}: put the "
                "collection on a file system that every Ray node mounts at the same path"
            )
        on = runtimes.Runtime(runtime, runtimes.cache_root(model_cache), threads, precision)
        pooling, trim = key.pooling, key.trim  # made the driver's way
        folder = None
        if quantized:  # the driver's very int8 model, calibrated once: written where this actor reads it
            folder = Path(tempfile.mkdtemp(prefix="imgsim-int8-"))
            for name, data in quantized.items():
                (folder / name).write_bytes(data)
        self.embedder = embedders.load_embedder(
            model, weights, image_size, on, pooling=pooling, trim=trim, quantized_in=folder
        )
        if self.embedder.key != key:  # never mix vectors of two models in one index
            raise RuntimeError(f"the Ray actor loaded {self.embedder.key}, the driver {key}")
        self.max_pixels, self.max_bytes = max_pixels, max_bytes

    def _prepare(self, path: str, known_sha1: str) -> tuple[str, np.ndarray | None, str, bytes]:
        """(sha1, pixels or None when the known vector stands, reason it cannot be read or "", its
        local features packed or b"")."""
        try:
            data = imaging.read_file(path, self.max_bytes)
        except imaging.UnreadableImage as error:
            return "", None, str(error), b""
        sha1 = hashlib.sha1(data).hexdigest()
        if sha1 == known_sha1:
            return sha1, None, "", b""
        try:
            image = imaging.decode_rgb(data, self.max_pixels, self.embedder.decode_side)
        except imaging.UnreadableImage as error:
            return sha1, None, str(error), b""
        found = local_features(data, image, self.max_pixels)  # here, not on the driver: once a file
        return sha1, self.embedder.prepare(image), "", keypoints.packed(found) if found is not None else b""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prepared = [
            self._prepare(str(p), str(k)) for p, k in zip(batch["path"], batch["known_sha1"], strict=True)
        ]
        vectors = np.zeros((len(prepared), self.embedder.dim), np.float32)
        rows = [n for n, (_, pixels, _, _) in enumerate(prepared) if pixels is not None]
        if rows:
            pixels = [prepared[n][1] for n in rows]
            vectors[rows] = self.embedder.embed(np.stack([p for p in pixels if p is not None]))
        embedded = np.zeros(len(prepared), bool)
        embedded[rows] = True
        return {
            "rel": batch["rel"],
            "sha1": np.array([sha1 for sha1, _, _, _ in prepared]),
            "reason": np.array([reason for _, _, reason, _ in prepared]),
            "embedded": embedded,
            "vector": vectors,
            "features": np.array([found for _, _, _, found in prepared], dtype=object),
        }


def cluster(cfg: config.Config) -> tuple[bool, int, float]:
    """Join the cluster at cfg.ray_address, or start a local one; (started here, nodes, CPUs)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=cfg.ray_address or None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return started, nodes, float(ray.cluster_resources().get("CPU", 1))


def _build_annoy(vectors: np.ndarray, path: str, metric: config.Metric, trees: int) -> float:
    """A Ray task: one segment's Annoy index, written where the driver will read it."""
    from imgsim.index import segments

    began = time.perf_counter()
    segments.build_annoy(vectors, Path(path), metric, trees)
    return time.perf_counter() - began


@contextlib.contextmanager
def annoy_builds(cfg: config.Config, log: Callable[[str], None]) -> Iterator[Callable]:
    """``submit(vectors, path)`` starts a segment's Annoy build as a Ray task and returns what
    waits for it (its seconds); the cluster is joined or started for the while."""
    import ray

    started, nodes, cpus = cluster(cfg)
    log(f"Ray: {nodes} node(s), {cpus:g} CPUs: the segments' Annoy indexes are built as tasks")
    task = ray.remote(num_cpus=1)(_build_annoy)

    def submit(vectors: np.ndarray, path: Path) -> Callable[[], float]:
        ref = task.remote(ray.put(vectors), str(path), cfg.metric, cfg.trees)
        return lambda: float(ray.get(ref))

    try:
        yield submit
    finally:
        if started:
            ray.shutdown()


def actor_arguments(embedder: embedders.Embedder, cfg: config.Config, root: str) -> dict:
    """How each actor loads the driver's model: the image size as asked (0 = the model's own), since
    the model key, which every vector of an index must share, records it that way; on the runtime
    the driver's model runs on, with as many inference threads as the actor has CPUs."""
    return {
        "model": embedder.source,
        "weights": embedder.weights,
        "image_size": cfg.image_size,
        "key": embedder.key,
        "max_pixels": cfg.max_image_pixels,
        "max_bytes": cfg.max_file_bytes,
        "root": root,
        "runtime": embedder.runtime,
        "model_cache": cfg.model_cache,
        "threads": max(1, math.ceil(cfg.ray_cpus_per_actor)),
        "precision": embedder.precision,
        "quantized": _files(embedder.quantized) if embedder.quantized else None,
    }


def _files(folder: Path) -> dict[str, bytes]:
    """An int8 model's files, to ship to the actors (a few MB: NNCF calibrates it once, on the driver)."""
    names = (runtimes.MODEL_XML, runtimes.MODEL_BIN, runtimes.KEY_FILE)
    return {name: (folder / name).read_bytes() for name in names}


def _embedding_pipeline(
    entries: list[FileEntry],
    embedder: embedders.Embedder,
    cfg: config.Config,
    root: str,
    known_sha1: dict[str, tuple[str, np.ndarray]],
    actors: int,
):
    """File references -> a pool of ``actors`` EmbedActors -> rows of (rel, sha1, reason, vector)."""
    import ray

    items = [
        {"path": str(e.abspath), "rel": e.path, "known_sha1": known_sha1.get(e.path, ("",))[0]}
        for e in entries
    ]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), actors * 8)))
    return dataset.map_batches(
        EmbedActor,
        fn_constructor_kwargs=actor_arguments(embedder, cfg, root),
        batch_size=cfg.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cfg.ray_cpus_per_actor,
        # Ray Data's actor pools restart an actor that dies and send its batch again
        # (max_restarts=-1, max_task_retries=-1 by default); tests/test_ray.py kills one to check.
    )


def embed_files(job: EmbedJob) -> EmbedResult:
    """The contract of indexing/embed_contract.py, on Ray: vectors by path, skips with reasons."""
    import ray

    entries, embedder, cfg, log = job.entries, job.embedder, job.cfg, job.log
    if embedder.trained_files is not None:
        raise ValueError(
            f"{embedder.name} is trained on this machine's collection: embed with --engine local"
        )
    began = time.perf_counter()
    started, nodes, cpus = cluster(cfg)
    actors = cfg.ray_actors or max(1, int(cpus // cfg.ray_cpus_per_actor))
    log(f"Ray: {nodes} node(s), {cpus:g} CPUs, {actors} embedding actor(s) of {cfg.ray_cpus_per_actor:g} CPU")
    by_path = {entry.path: entry for entry in entries}
    embedded = _embedding_pipeline(entries, embedder, cfg, job.root, job.known_sha1, actors)
    result = EmbedResult(engine="ray", actors=actors, nodes=nodes)
    try:
        with collecting(job, result, "Embedding (Ray)") as collect:
            for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
                result.warmup_seconds = result.warmup_seconds or time.perf_counter() - began
                for rel, sha1, reason, fresh, vector, found in zip(
                    batch["rel"],
                    batch["sha1"],
                    batch["reason"],
                    batch["embedded"],
                    batch["vector"],
                    batch["features"],
                    strict=True,
                ):
                    if reason:
                        collect.skipped(str(rel), str(reason))
                    elif fresh:
                        features = keypoints.unpacked(bytes(found)) if len(found) else None
                        collect.embedded(
                            by_path[str(rel)], str(sha1), np.asarray(vector, np.float32), features
                        )
                    else:
                        collect.reused(str(rel), str(sha1))
                collect.checkpoint()
    except ray.exceptions.RayError as error:
        if "CollectionUnreadable" in str(error):  # raised in an actor: say it in one sentence
            raise CollectionUnreadable(
                str(error).split("CollectionUnreadable: ")[-1].splitlines()[0]
            ) from None
        raise
    finally:
        if started:
            ray.shutdown()
    result.seconds = time.perf_counter() - began
    return result
