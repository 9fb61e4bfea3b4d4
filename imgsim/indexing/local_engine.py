"""Embed a list of files in this process: threads decode the next images while the network runs.

This is the engine a build uses on one machine. It gives back one EmbedResult: the vectors by
path, the files it skipped with the reason, and how long the network took. Progress is saved
through ``checkpoint`` every ``cfg.checkpoint_every`` images, so a killed run resumes.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from imgsim import config
from imgsim.images import imaging
from imgsim.indexing.collection import FileEntry, prefetch
from imgsim.models.embedders import Embedder

Done = list[tuple[FileEntry, str, np.ndarray]]  # (file, sha1, vector)


@dataclass
class EmbedResult:
    vectors: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # path -> (sha1, vector)
    embedded: int = 0  # run through the network (the rest reused a vector by content hash)
    measured: int = 0  # of those, embedded while choosing the precision (not in ``seconds``)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    engine: str = "local"  # or "ray", with how many actors on how many nodes
    actors: int = 0
    nodes: int = 1
    warmup_seconds: float = 0.0  # until the first vectors came back (cluster start, model loads)


def embed_files(
    entries: list[FileEntry],
    embedder: Embedder,
    cfg: config.Config,
    known_sha1: dict[str, tuple[str, np.ndarray]],
    checkpoint: Callable[[Done], None] | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed files in batches; unreadable files are skipped and reported, never fatal.

    A file whose content hash is in ``known_sha1`` (touched, not changed) reuses its vector.
    """
    from tqdm import tqdm

    result = EmbedResult()
    started = time.perf_counter()

    def decode(entry: FileEntry) -> tuple[str, np.ndarray | None] | imaging.UnreadableImage:
        try:
            data = entry.abspath.read_bytes()
        except OSError as error:
            return imaging.UnreadableImage(f"cannot read file: {error.strerror or error}")
        sha1 = hashlib.sha1(data).hexdigest()
        old = known_sha1.get(entry.path)
        if old is not None and old[0] == sha1:
            return sha1, None
        try:
            image = imaging.decode_rgb(data, cfg.max_image_pixels, embedder.decode_side)
            return sha1, embedder.prepare(image)
        except imaging.UnreadableImage as error:
            return error

    batch: list[tuple[FileEntry, str, np.ndarray]] = []
    unsaved: Done = []

    def run_batch() -> None:
        vectors = embedder.embed(np.stack([pixels for _, _, pixels in batch]))
        for (entry, sha1, _), vector in zip(batch, vectors, strict=True):
            result.vectors[entry.path] = (sha1, vector)
            unsaved.append((entry, sha1, vector))
        result.embedded += len(batch)
        bar.update(len(batch))
        batch.clear()
        if checkpoint is not None and len(unsaved) >= cfg.checkpoint_every:
            checkpoint(list(unsaved))
            unsaved.clear()

    bar = tqdm(total=len(entries), unit="img", desc="Embedding", disable=not progress, smoothing=0.1)
    try:
        for entry, future in prefetch(entries, decode, config.decode_threads(cfg), 2 * cfg.batch_size):
            outcome = future.result()
            if isinstance(outcome, imaging.UnreadableImage):
                result.skipped.append((entry.path, str(outcome)))
                bar.update(1)
                bar.write(f"skipped {entry.path}: {outcome}", file=sys.stderr)
                continue
            sha1, pixels = outcome
            if pixels is None:
                result.vectors[entry.path] = (sha1, known_sha1[entry.path][1])
                bar.update(1)
                continue
            batch.append((entry, sha1, pixels))
            if len(batch) >= cfg.batch_size:
                run_batch()
        if batch:
            run_batch()
    except KeyboardInterrupt:
        if checkpoint is not None and unsaved:
            checkpoint(unsaved)
            print(f"\nInterrupted: {len(result.vectors)} embeddings saved; rerun to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
    result.seconds = time.perf_counter() - started
    return result
