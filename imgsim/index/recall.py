"""How deep Annoy must search to find what exact search finds, measured on the index itself.

Annoy's default depth (trees x k nodes) is tuned for queries that are in the collection; an edited
upload (cropped, bordered, gray) lies between the trees' split planes and needs a deeper search.
At build time the index is queried with edited copies of some of its own images at growing
``search_k``; the smallest depth whose recall@k against exact search reaches the target is kept in
the manifest. Where that depth costs more than exact search (small collections), exact search is
chosen instead: ``search_k`` 0.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from annoy import AnnoyIndex

from imgsim import config
from imgsim.index.depth import EXACT_SEARCH_K
from imgsim.index.vectors import distances, row_norms, smallest

REFINE = 2  # halvings of the gap between the last doubling short of the target and the first past it


@dataclass
class RecallPoint:
    search_k: int  # EXACT_SEARCH_K = exact search
    recall: float  # recall@k of Annoy against exact search, over the calibration queries
    ms: float  # mean time of one query


@dataclass
class RecallCurve:
    """What a build measured and chose; stored in the manifest under ``recall``."""

    target: float
    k: int
    queries: int
    search_k: int  # the choice: the smallest depth that reached the target, or EXACT_SEARCH_K
    recall: float  # what the choice reached
    ms: float  # and what one query costs with it
    exact_ms: float
    points: list[RecallPoint] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RecallCurve:
        points = [RecallPoint(**p) for p in data.get("points", [])]
        return cls(**{**data, "points": points})


def exact_top(
    matrix: np.ndarray, queries: np.ndarray, k: int, metric: config.Metric
) -> tuple[list[np.ndarray], float]:
    """The exact top-k rows of each query, and the mean ms of one exact query."""
    norms = row_norms(matrix) if metric == "angular" else None
    began = time.perf_counter()
    tops = []
    for query in queries:
        tops.append(smallest(distances(matrix, query, metric, norms), k))
    return tops, 1000 * (time.perf_counter() - began) / max(1, len(queries))


def _annoy_point(
    annoy: AnnoyIndex, queries: np.ndarray, truth: list[np.ndarray], k: int, search_k: int
) -> RecallPoint:
    lists = [q.tolist() for q in queries]
    began = time.perf_counter()
    found = [annoy.get_nns_by_vector(q, k, search_k=search_k) for q in lists]
    ms = 1000 * (time.perf_counter() - began) / len(lists)
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return RecallPoint(search_k, round(hits / sum(len(t) for t in truth), 4), round(ms, 4))


def calibrate(
    annoy: AnnoyIndex,
    matrix: np.ndarray,
    queries: np.ndarray,
    target: float,
    trees: int,
    metric: config.Metric = "angular",
    k: int = 10,
) -> RecallCurve:
    """Measure recall@k at doubling search_k from Annoy's default, then between the last two; choose
    the cheapest that meets ``target``, or exact search where Annoy would need more time than exact
    search to get there."""
    matrix = np.asarray(matrix, np.float32)
    queries = np.asarray(queries, np.float32)
    k = min(k, len(matrix))
    truth, exact_ms = exact_top(matrix, queries, k, metric)
    _annoy_point(annoy, queries[:8], truth[:8], k, trees * k)  # warm the pages before timing
    points: list[RecallPoint] = []
    search_k, ceiling = trees * k, max(trees * k, 2 * trees * len(matrix))
    while True:
        point = _annoy_point(annoy, queries, truth, k, search_k)
        points.append(point)
        if point.recall >= target or point.ms > exact_ms or search_k >= ceiling:
            break
        search_k *= 2
    if len(points) > 1 and points[-1].recall >= target:
        points += _between(annoy, queries, truth, k, target, points[-2].search_k, points[-1].search_k)
    exact_ms = round(exact_ms, 4)
    chosen = choose(points, exact_ms, target)
    return RecallCurve(target, k, len(queries), chosen.search_k, chosen.recall, chosen.ms, exact_ms, points)


def _between(
    annoy: AnnoyIndex,
    queries: np.ndarray,
    truth: list[np.ndarray],
    k: int,
    target: float,
    short: int,
    enough: int,
) -> list[RecallPoint]:
    """Depths between one that fell ``short`` of the target and twice it, which was ``enough``,
    halving the gap REFINE times: doubling alone chose up to twice the depth needed (one search of
    a 250,000-vector segment costs in proportion)."""
    found = []
    for _ in range(REFINE):
        middle = (short + enough) // 2
        found.append(_annoy_point(annoy, queries, truth, k, middle))
        short, enough = (short, middle) if found[-1].recall >= target else (middle, enough)
    return found


def choose(points: list[RecallPoint], exact_ms: float, target: float) -> RecallPoint:
    """The cheapest measured depth that reaches ``target`` in no more time than exact search,
    else exact search itself."""
    good = [p for p in points if p.recall >= target and p.ms <= exact_ms]
    return min(good, key=lambda p: p.search_k) if good else RecallPoint(EXACT_SEARCH_K, 1.0, exact_ms)
