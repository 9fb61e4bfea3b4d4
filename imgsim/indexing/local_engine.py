"""Embed a list of files in this process: threads decode the next images while the network runs,
and find each one's local features from the same decode (its segment stores them).

This is the engine a build uses on one machine; it keeps the contract of indexing/embed_contract.py
(one EmbedJob in, one EmbedResult out, progress checkpointed), as the Ray engine does.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from imgsim import config, threads
from imgsim.images import geometry, imaging
from imgsim.indexing.collection import FileEntry
from imgsim.indexing.embed_contract import EmbedJob, EmbedResult, collecting, local_features

Decoded = tuple[str, np.ndarray | None, geometry.Features | None]  # sha1, network pixels, features
FIND_FEATURES = True  # False: left to the segment's writing, which decodes the file again (a bench's column)


def embed_files(job: EmbedJob) -> EmbedResult:
    """Embed the job's files in batches; unreadable files are skipped and reported, never fatal.
    A file whose content hash is in ``job.known_sha1`` (touched, not changed) reuses its vector."""
    embedder, cfg, known_sha1 = job.embedder, job.cfg, job.known_sha1
    result = EmbedResult()
    started = time.perf_counter()

    def decode(entry: FileEntry) -> Decoded | imaging.UnreadableImage:
        try:
            data = imaging.read_file(entry.abspath, cfg.max_file_bytes)
        except imaging.UnreadableImage as error:
            return error
        sha1 = hashlib.sha1(data).hexdigest()
        old = known_sha1.get(entry.path)
        if old is not None and old[0] == sha1:
            return sha1, None, None
        try:
            image = imaging.decode_rgb(data, cfg.max_image_pixels, embedder.decode_side)
            found = local_features(data, image, cfg.max_image_pixels) if FIND_FEATURES else None
            return sha1, embedder.prepare(image), found
        except imaging.UnreadableImage as error:
            return error

    batch: list[tuple[FileEntry, str, np.ndarray, geometry.Features | None]] = []
    with collecting(job, result, "Embedding") as collect:

        def run_batch() -> None:
            vectors = embedder.embed(np.stack([pixels for _, _, pixels, _ in batch]))
            for (entry, sha1, _, found), vector in zip(batch, vectors, strict=True):
                collect.embedded(entry, sha1, vector, found)
            batch.clear()
            collect.checkpoint()

        decoding = threads.prefetch(job.entries, decode, config.decode_threads(cfg), 2 * cfg.batch_size)
        for entry, future in decoding:
            outcome = future.result()
            if isinstance(outcome, imaging.UnreadableImage):
                collect.skipped(entry.path, str(outcome))
                continue
            sha1, pixels, found = outcome
            if pixels is None:
                collect.reused(entry.path, sha1)
                continue
            batch.append((entry, sha1, pixels, found))
            if len(batch) >= cfg.batch_size:
                run_batch()
        if batch:
            run_batch()
    result.seconds = time.perf_counter() - started
    return result
