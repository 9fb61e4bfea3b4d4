"""Each binary descriptor's two nearest among another picture's, by Hamming distance: what every
ORB match (geometry.ratio_matches) starts from, tens of times a search.

faiss's exact binary index (IndexBinaryFlat) does it where OpenCV's brute-force matcher spent about
3.5 ns a pair of descriptors. Measured on 1,600 pairs of Holidays photos (AMD EPYC, one thread,
docs/benchmarks.md section 19): the same nearest (a kept match's best is strictly nearer than its
second, so ties never decide), 0.13 -> 0.06 ms for a first look's 64 sampled keypoints against a
candidate's 500, 0.89 -> 0.37 ms for 500 against 500.
"""

from __future__ import annotations

import functools

import numpy as np

BITS = 256  # ORB's descriptor: 32 bytes


@functools.cache
def _faiss():
    """faiss, on one OpenMP thread: a search's matching is many small calls, each too small to
    share, made by a service worker beside another on the same cores (the builds run their checks
    in threads of their own)."""
    import faiss

    faiss.omp_set_num_threads(1)
    return faiss


def two_nearest(queries: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Hamming distances of each of ``queries``' descriptors (rows of 32 bytes) to its two
    nearest rows of ``among`` (at least 2), nearest first, and those rows' indices."""
    faiss = _faiss()
    index = faiss.IndexBinaryFlat(BITS)
    index.add(np.ascontiguousarray(among, np.uint8))
    distances, nearest = index.search(np.ascontiguousarray(queries, np.uint8), 2)
    return distances, nearest.astype(np.int64)
