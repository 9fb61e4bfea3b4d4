"""Arithmetic on embeddings that every layer needs: unit length, exact search, readable scores.

Annoy answers approximately; the live delta, the evaluation and the reducers' neighbour check
need the exact answer, computed here with the same distances Annoy reports.
"""

from __future__ import annotations

import numpy as np

from imgsim import config

_TINY = 1e-12


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero instead of dividing by 0."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, _TINY)


def mean_direction(vectors: np.ndarray) -> np.ndarray:
    """The mean of the unit vectors: the direction every photo of a collection shares."""
    return normalise(vectors).mean(axis=0)


def centred(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Unit vectors with the collection's shared direction taken off, scaled back to unit length.

    What all photos share says nothing about which one is meant; without it cosines spread wider,
    which ranks classes better (mAP, docs/benchmarks.md section 9).
    """
    return normalise(normalise(vectors) - mean)


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """Each row's length, never 0: computed once for a matrix that many queries search."""
    return np.maximum(np.linalg.norm(matrix, axis=1), _TINY)


def distances(
    matrix: np.ndarray, query: np.ndarray, metric: config.Metric, norms: np.ndarray | None = None
) -> np.ndarray:
    """The distance Annoy would report between ``query`` and every row of ``matrix``, exactly."""
    if metric == "angular":  # Annoy's angular distance is sqrt(2 - 2 cos)
        norms = row_norms(matrix) if norms is None else norms
        cos = (matrix @ query) / (norms * max(float(np.linalg.norm(query)), _TINY))
        return np.sqrt(np.maximum(2.0 - 2.0 * cos, 0.0))
    if metric == "euclidean":
        return np.linalg.norm(matrix - query, axis=1)
    if metric == "manhattan":
        return np.abs(matrix - query).sum(axis=1)
    raise ValueError(f"exact search supports the angular, euclidean and manhattan metrics, not {metric}")


def smallest(found: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, nearest first (ties in their original order)."""
    top = np.argpartition(found, k - 1)[:k] if k < len(found) else np.arange(len(found))
    return top[np.argsort(found[top], kind="stable")]


def distance_to_score(distance: float, metric: config.Metric) -> float:
    """A similarity in 0..1 (1 = identical direction) that people can read."""
    if metric == "angular":
        return max(0.0, min(1.0, 1.0 - distance * distance / 2.0))
    if metric == "dot":
        return distance
    return 1.0 / (1.0 + distance)


def similarities_to_others(unit: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine of each row in ``rows`` to every row of ``unit`` (unit vectors), itself at -inf.

    Leave-one-out search: the query is in the collection and must not find itself.
    """
    sims = unit[rows] @ unit.T
    sims[np.arange(len(rows)), rows] = -np.inf
    return sims


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k nearest vectors (cosine) to each query row, excluding the row itself."""
    unit = normalise(vectors)
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 512):
        rows = np.asarray(queries[start : start + 512])
        sims = similarities_to_others(unit, rows)
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        result[start : start + len(rows)] = np.take_along_axis(top, order, axis=1)
    return result
