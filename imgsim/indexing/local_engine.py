"""Embed a list of files in this process: threads decode the next images while the network runs.

This is the engine a build uses on one machine; it keeps the contract of indexing/embed_contract.py
(one EmbedJob in, one EmbedResult out, progress checkpointed), as the Ray engine does.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from imgsim import config
from imgsim.images import imaging
from imgsim.indexing.collection import FileEntry, prefetch
from imgsim.indexing.embed_contract import EmbedJob, EmbedResult, collecting


def embed_files(job: EmbedJob) -> EmbedResult:
    """Embed the job's files in batches; unreadable files are skipped and reported, never fatal.
    A file whose content hash is in ``job.known_sha1`` (touched, not changed) reuses its vector."""
    embedder, cfg, known_sha1 = job.embedder, job.cfg, job.known_sha1
    result = EmbedResult()
    started = time.perf_counter()

    def decode(entry: FileEntry) -> tuple[str, np.ndarray | None] | imaging.UnreadableImage:
        try:
            data = imaging.read_file(entry.abspath, cfg.max_file_bytes)
        except imaging.UnreadableImage as error:
            return error
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
    with collecting(job, result, "Embedding") as collect:

        def run_batch() -> None:
            vectors = embedder.embed(np.stack([pixels for _, _, pixels in batch]))
            for (entry, sha1, _), vector in zip(batch, vectors, strict=True):
                collect.embedded(entry, sha1, vector)
            batch.clear()
            collect.checkpoint()

        decoding = prefetch(job.entries, decode, config.decode_threads(cfg), 2 * cfg.batch_size)
        for entry, future in decoding:
            outcome = future.result()
            if isinstance(outcome, imaging.UnreadableImage):
                collect.skipped(entry.path, str(outcome))
                continue
            sha1, pixels = outcome
            if pixels is None:
                collect.reused(entry.path, sha1)
                continue
            batch.append((entry, sha1, pixels))
            if len(batch) >= cfg.batch_size:
                run_batch()
        if batch:
            run_batch()
    result.seconds = time.perf_counter() - started
    return result
