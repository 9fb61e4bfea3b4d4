"""An upload's hash candidates: the block index the service uses against comparing every row.

``python -m bench.hash_lookup`` prints p50 milliseconds for 10,000 to 1,000,000 stored hashes
(random stand-ins, each row's hash at four turns as a build stores them), side by side in one run.
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import table
from imgsim.images import hashing
from imgsim.index import keypoints
from imgsim.search import verification

SIZES = (10_000, 100_000, 1_000_000)


def lookup_ms(size: int, query: np.ndarray, rounds: int = 30) -> tuple[float, float]:
    """p50 ms of the hash candidates of ``query`` ((4, 8): the upload at each turn) among ``size``
    hashes: by the index (nearest_by_hash), and by comparing every row (what it did before)."""
    stand_in = keypoints.VersionKeypoints([])
    stand_in.hashes = np.random.default_rng(0).integers(0, 256, (size, 4, 8), dtype=np.uint8)
    stand_in.nearest_by_hash(query, verification.HASH_NEAR, verification.HASH_LIMIT)  # builds the index
    indexed, scanned = [], []
    for _ in range(rounds):
        began = time.perf_counter()
        stand_in.nearest_by_hash(query, verification.HASH_NEAR, verification.HASH_LIMIT)
        indexed.append(time.perf_counter() - began)
        began = time.perf_counter()
        unturned = np.ascontiguousarray(stand_in.hashes[:, 0])
        bits = np.min([hashing.distances(unturned, turn) for turn in query], axis=0)
        np.flatnonzero(bits <= verification.HASH_NEAR)
        scanned.append(time.perf_counter() - began)
    return 1000 * float(np.median(indexed)), 1000 * float(np.median(scanned))


def main() -> None:
    query = np.random.default_rng(9).integers(0, 256, (4, 8), dtype=np.uint8)
    rows = []
    for size in SIZES:
        indexed, scanned = lookup_ms(size, query)
        rows.append([f"{size:,}", f"{indexed:.2f}", f"{scanned:.2f}"])
    print(table(["stored hashes", "block index, ms p50", "every row compared, ms p50"], rows))


if __name__ == "__main__":
    main()
