"""What a build measures on its new index before publishing it: how deep Annoy must search.

The queries are edited copies (edits.CALIBRATION) of a fixed sample of the collection's own
images, made in memory and embedded like uploads. Their vectors are kept in the version
(``calibration.npz``) so that the next build for the same model reuses them instead of running the
network again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

import config
import edits
import embedders
import imaging
import recall
import store

CALIBRATION_FILE = "calibration.npz"


def sample_rows(count: int, wanted: int, seed: int = 0) -> list[int]:
    """A fixed sample: the same collection gives the same rows, so builds are reproducible."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(count, min(count, wanted), replace=False).tolist())


def edited_vectors(
    root: Path, items: list[store.Item], embedder: embedders.Embedder, cfg: config.Config
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors): every calibration edit of each sampled item that can be read, embedded a
    batch at a time (a batch of camera photos' edits is all that is ever held in memory)."""
    ids: list[int] = []
    pixels: list[np.ndarray] = []
    vectors = [np.zeros((0, embedder.dim), np.float32)]
    for row in sample_rows(len(items), cfg.recall_sample):
        try:
            image = imaging.open_rgb(root / items[row].path, cfg.max_image_pixels, embedder.decode_side)
        except imaging.UnreadableImage:
            continue
        for name in edits.CALIBRATION:
            ids.append(items[row].id)
            pixels.append(embedder.prepare(edits.apply(name, image)))
        if len(pixels) >= cfg.batch_size:
            vectors.append(embedder.embed(np.stack(pixels)))
            pixels = []
    if pixels:
        vectors.append(embedder.embed(np.stack(pixels)))
    return np.array(ids, np.int64), np.concatenate(vectors)


def reusable(
    previous: Path | None, key: str, items: list[store.Item], wanted: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The previous version's calibration vectors for items that are still there, unchanged, if
    they are enough (at least half of what a fresh sample would give) and made with the same model."""
    if previous is None or not (previous / CALIBRATION_FILE).is_file():
        return None
    with np.load(previous / CALIBRATION_FILE) as saved:
        if str(saved["model_key"]) != key:
            return None
        sha1 = {item.id: item.sha1 for item in items}
        keep = np.array(
            [sha1.get(int(i)) == str(s) for i, s in zip(saved["ids"], saved["sha1"], strict=True)], bool
        )
        ids, vectors = saved["ids"][keep], saved["vectors"][keep]
    enough = min(len(items), wanted) * len(edits.CALIBRATION) // 2
    return (ids, vectors) if len(ids) and len(ids) >= enough else None


def save(version: Path, key: str, items: list[store.Item], ids: np.ndarray, vectors: np.ndarray) -> None:
    sha1 = {item.id: item.sha1 for item in items}
    np.savez(
        version / CALIBRATION_FILE,
        model_key=key,
        ids=ids,
        sha1=np.array([sha1[int(i)] for i in ids]),
        vectors=vectors,
    )


def choose_depth(
    annoy_path: Path, index_vectors: np.ndarray, queries: np.ndarray, cfg: config.Config,
    log: Callable[[str], None],
) -> recall.RecallCurve | None:  # fmt: skip
    """The recall curve of the saved index on these queries (in the index's space) and the depth
    it chose; None where it cannot be measured (no queries, or a metric without exact search)."""
    if not len(queries) or cfg.metric == "dot":
        log(
            "Search depth not measured: "
            + ("no readable images" if not len(queries) else "metric dot")
            + "; Annoy's default."
        )
        return None
    annoy = AnnoyIndex(index_vectors.shape[1], cfg.metric)
    annoy.load(str(annoy_path))
    try:
        curve = recall.calibrate(annoy, index_vectors, queries, cfg.target_recall, cfg.trees, cfg.metric)
    finally:
        annoy.unload()
    chosen = "exact search" if curve.search_k == recall.EXACT else f"search_k {curve.search_k}"
    log(
        f"Search depth for recall@{curve.k} >= {curve.target} on {curve.queries} edited queries: {chosen} "
        f"(recall {curve.recall:.3f}, {curve.ms:.2f} ms a query; exact search {curve.exact_ms:.2f} ms)"
    )
    return curve
