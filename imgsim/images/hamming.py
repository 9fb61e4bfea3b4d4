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
    import faiss

    return faiss


def two_nearest(queries: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Hamming distances of each of ``queries``' descriptors (rows of 32 bytes) to its two
    nearest rows of ``among`` (at least 2), nearest first, and those rows' indices."""
    faiss = _faiss()
    # on one OpenMP thread, set in each calling thread (OpenMP keeps it per thread): a search makes
    # many calls too small to share, and OpenMP's idle threads spin, taking the core from the
    # network and from the other service worker (a bench run with them took twice as long)
    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(BITS)
    index.add(np.ascontiguousarray(among, np.uint8))
    distances, nearest = index.search(np.ascontiguousarray(queries, np.uint8), 2)
    return distances, nearest.astype(np.int64)
