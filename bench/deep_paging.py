"""What a page deep in a ranking costs one segment (hardening item 6): why results stop at 1,000.

    .venv/bin/python -m bench.deep_paging

One Annoy segment of 250,000 stand-in vectors (256-d, mixtures around 2,000 centres: the size a
1M collection's four segments each hold, reduced by PCA), 100 trees; 20 queries asked for the
offset + k neighbours a page needs, at the depth a segment searches them (trees x wanted). p50 ms
per segment, as a table.
"""

from __future__ import annotations

import time

import numpy as np
from annoy import AnnoyIndex

from bench.common import table

ITEMS, DIMS, TREES = 250_000, 256, 100
WANTED = (10, 100, 1_000, 10_100)  # the first page; a deep one; the most now served; the old limit


def main() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2_000, DIMS)).astype(np.float32)
    index = AnnoyIndex(DIMS, "angular")
    began = time.perf_counter()
    for item in range(ITEMS):
        index.add_item(
            item, centres[item % len(centres)] + 0.5 * rng.standard_normal(DIMS).astype(np.float32)
        )
    index.build(TREES, n_jobs=1)
    print(f"built {ITEMS:,} x {DIMS} in {time.perf_counter() - began:.0f} s")
    queries = [(centres[j] + 0.5 * rng.standard_normal(DIMS)).tolist() for j in range(20)]
    rows = []
    for wanted in WANTED:
        took = []
        for query in queries:
            start = time.perf_counter()
            index.get_nns_by_vector(query, wanted, search_k=TREES * wanted, include_distances=True)
            took.append(time.perf_counter() - start)
        rows.append([f"{wanted:,}", f"{1000 * float(np.median(took)):.1f}"])
    print(table(["offset + k", "ms p50, one segment"], rows))


if __name__ == "__main__":
    main()
