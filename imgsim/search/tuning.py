"""What a build measures on its new index before publishing it: how deep Annoy must search.

The queries are edited copies (edits.CALIBRATION) of a fixed sample of the collection's own
images, made in memory and embedded like uploads. Their vectors are kept in the version
(``calibration.npz``) so that the next build for the same model reuses them instead of running the
network again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from imgsim import config, threads
from imgsim.images import edits, imaging
from imgsim.index import matching, migrate, recall, store
from imgsim.index import vectors as vector_math
from imgsim.index.depth import EXACT_SEARCH_K
from imgsim.index.model_key import ModelKey
from imgsim.models import embedders

CALIBRATION_FILE = "calibration.npz"
NEIGHBOUR_SAMPLE = 500  # photos whose nearest other photos show what "different" looks like


def sample_rows(count: int, wanted: int, seed: int = 0) -> list[int]:
    """A fixed sample: the same collection gives the same rows, so builds are reproducible."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(count, min(count, wanted), replace=False).tolist())


@dataclass
class EditedQueries:
    """Edited copies of sampled photos, embedded: which photo, which edit, its full vector."""

    ids: np.ndarray
    edits: np.ndarray
    vectors: np.ndarray

    def keep(self, rows: np.ndarray) -> EditedQueries:
        return EditedQueries(self.ids[rows], self.edits[rows], self.vectors[rows])


def edited_vectors(
    root: Path, items: list[store.Item], embedder: embedders.Embedder, cfg: config.Config
) -> EditedQueries:
    """Every calibration edit of each sampled item that can be read, embedded a batch at a time
    (a few photos' edits are all that is ever held in memory). The photos are decoded and edited
    in threads while the network embeds those before them: for camera JPEGs that work is about
    twice the network's (50 photos' edits: 2.1-3.6 s against 1.3 s, EfficientNet-Lite0)."""
    ids: list[int] = []
    names: list[str] = []
    pixels: list[np.ndarray] = []
    vectors = [np.zeros((0, embedder.dim), np.float32)]

    def edited(row: int) -> list[np.ndarray] | None:
        try:
            image = imaging.open_rgb(root / items[row].path, cfg.max_image_pixels, embedder.decode_side)
        except imaging.UnreadableImage:
            return None
        return [embedder.prepare(edits.apply(name, image)) for name in edits.CALIBRATION]

    workers = config.decode_threads(cfg)
    for row, future in threads.prefetch(
        sample_rows(len(items), cfg.recall_sample), edited, workers, 2 * workers
    ):
        made = future.result()
        if made is None:
            continue
        ids += [items[row].id] * len(made)
        names += list(edits.CALIBRATION)
        pixels += made
        if len(pixels) >= cfg.batch_size:
            vectors.append(embedder.embed(np.stack(pixels)))
            pixels = []
    if pixels:
        vectors.append(embedder.embed(np.stack(pixels)))
    return EditedQueries(np.array(ids, np.int64), np.array(names, dtype=str), np.concatenate(vectors))


def reusable(
    previous: Path | None, key: ModelKey, items: list[store.Item], wanted: int
) -> EditedQueries | None:
    """The previous version's edited queries for items that are still there, unchanged, if they
    are enough (at least half of what a fresh sample would give) and made with the same model."""
    if previous is None or not (previous / CALIBRATION_FILE).is_file():
        return None
    with np.load(previous / CALIBRATION_FILE) as saved:
        if str(saved["model_key"]) != str(key) or not migrate.calibration_has_edits(saved):
            return None
        sha1 = {item.id: item.sha1 for item in items}
        present = [sha1.get(int(i)) == str(s) for i, s in zip(saved["ids"], saved["sha1"], strict=True)]
        found = EditedQueries(saved["ids"], saved["edits"], saved["vectors"]).keep(np.array(present, bool))
    enough = min(len(items), wanted) * len(edits.CALIBRATION) // 2
    return found if len(found.ids) and len(found.ids) >= enough else None


def save(version: Path, key: ModelKey, items: list[store.Item], found: EditedQueries) -> None:
    sha1 = {item.id: item.sha1 for item in items}
    np.savez(
        version / CALIBRATION_FILE,
        model_key=str(key),
        ids=found.ids,
        edits=found.edits,
        sha1=np.array([sha1[int(i)] for i in found.ids]),
        vectors=found.vectors,
    )


def calibrate_segment(
    annoy_path: Path, index_vectors: np.ndarray, queries: np.ndarray, cfg: config.Config
) -> recall.RecallCurve | None:
    """The depth one segment needs for the target recall on the calibration queries (in the
    index's space), against exact search over that segment; None where it cannot be measured."""
    if not len(queries) or cfg.metric == "dot":
        return None
    annoy = AnnoyIndex(index_vectors.shape[1], cfg.metric)
    annoy.load(str(annoy_path))
    try:
        return recall.calibrate(annoy, index_vectors, queries, cfg.target_recall, cfg.trees, cfg.metric)
    finally:
        annoy.unload()


def thresholds_of(
    annoy_path: Path,
    index_vectors: np.ndarray,
    items: list[store.Item],
    queries: np.ndarray,
    found: EditedQueries,
    depth: int,
    metric: config.Metric,
) -> matching.Thresholds | None:
    """The match labels' distances, measured on one segment (its ``items``), with the queries
    whose originals it holds."""
    rows_by_id = {item.id: row for row, item in enumerate(items)}
    mine = np.array([int(i) in rows_by_id for i in found.ids], bool)
    if metric == "dot" or not mine.any():
        return None
    annoy = AnnoyIndex(index_vectors.shape[1], metric)
    annoy.load(str(annoy_path))
    try:
        return _thresholds(annoy, index_vectors, queries[mine], found.keep(mine), rows_by_id, depth, metric)
    finally:
        annoy.unload()


def _thresholds(
    annoy: AnnoyIndex,
    matrix: np.ndarray,
    queries: np.ndarray,
    found: EditedQueries,
    rows_by_id: dict[int, int],
    depth: int,
    metric: config.Metric,
) -> matching.Thresholds:
    """Copies' distances to their originals; a sample's distances to their nearest and tenth-nearest
    other photos (exact where the index searches exactly, else at its depth)."""
    copies = [
        vector_math.distances(matrix[[rows_by_id[int(i)]]], query, metric)[0]
        for i, name, query in zip(found.ids, found.edits, queries, strict=True)
        if name in matching.COPY_EDITS
    ]
    norms = vector_math.row_norms(matrix) if metric == "angular" else None
    nearest, tenth = [], []
    for row in sample_rows(len(matrix), NEIGHBOUR_SAMPLE, seed=2):
        if depth == EXACT_SEARCH_K:
            found_all = np.delete(vector_math.distances(matrix, matrix[row], metric, norms), row)
            others = found_all[vector_math.smallest(found_all, 10)]
        else:
            _, distances = annoy.get_nns_by_item(row, 11, search_k=depth, include_distances=True)
            others = np.array(distances[1:])
        if not len(others):  # a collection of one photo has no "other"
            continue
        nearest.append(others[0])
        tenth.append(others[-1])
    copies_or_none = np.array(copies or [0.0])
    return matching.calibrate(copies_or_none, np.array(nearest or [0.0]), np.array(tenth or [0.0]))
