"""Each row's best pairs: the candidate sources that propose a few pairs a row (shared words,
near hashes, pieces) keep, of all the pairs they found, those a row ranks among its best."""

from __future__ import annotations

import numpy as np


def ranks(rows: np.ndarray, others: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Each pair's rank (0: first) among the pairs of its row in ``rows``, the highest ``score``
    first, ties to the lower row in ``others``."""
    order = np.lexsort((others, -score, rows))
    ranked = rows[order]
    rank = np.empty(len(rows), np.int64)
    rank[order] = np.arange(len(ranked)) - np.searchsorted(ranked, ranked)  # from where its row begins
    return rank


def among_the_best(first: np.ndarray, second: np.ndarray, score: np.ndarray, per_row: int) -> np.ndarray:
    """For each pair (first[i], second[i]), whether one of its rows ranks it among the ``per_row``
    best of all its pairs, where it is the first row and where it is the second alike (ranks)."""
    rows, others = np.concatenate([first, second]), np.concatenate([second, first])
    best = ranks(rows, others, np.concatenate([score, score])) < per_row
    return best[: len(first)] | best[len(first) :]
