"""A search's shortlist reordered by what each candidate's own neighbours say (database-side
augmentation within the shortlist).

A photo of a scene from one side may look less like the query than a look-alike does, while
looking much like another photo of the scene that does look like the query. Database-side
augmentation (Arandjelović & Zisserman, CVPR 2012; weighted as in Gordo et al., IJCV 2017)
replaces each collection vector by the average of it and its nearest neighbours, weighted by their
likeness raised to a power, so that photos of one scene draw together. Computed here at query time
among the candidates the search already holds (a first page's 40 nearest, which a scene's other
photos are among): no build, file or live addition is changed, and it costs a 40 x 40 product.

Chosen by exact search over holidays_a's and flowers5's stored vectors (the shared
EfficientNet-Lite0): 2 neighbours at power 3 within the 40 nearest gave what augmenting the whole
collection gives (Holidays mAP 0.803 -> 0.841); as the service ranks, side by side
(docs/benchmarks.md section 16): Holidays mAP 0.819 -> 0.836, flowers5 P@1 0.683 -> 0.689, P@10
0.629 -> 0.633, mAP 0.371 both, every edit kind's rank 1 unchanged. A candidate is never ranked
below its own likeness (the query's own file stays before a near twin).
"""

from __future__ import annotations

import numpy as np

from imgsim.search.annoy_index import Hit, SearchIndex

AUGMENT = True  # False: the embedding's order stands (a benchmark's column before it)
NEIGHBOURS = 2  # each candidate's nearest among the others (the whole collection augmented, by
# exact search: 2 gave Holidays 0.841, 3 0.836, 4 0.820)
POWER = 3  # likeness (cosine) raised to it as the weight (likewise: 1 gave 0.832, 5 0.814)


def reordered(index: SearchIndex, vector: np.ndarray, hits: list[Hit], first: int) -> list[Hit]:
    """The ``first`` of ``hits`` (a query's nearest, ``vector`` the query in the index's space)
    in the order of the query's likeness to each one averaged with its NEIGHBOURS nearest among
    them, then the rest; where the index's metric is not angular, or fewer than NEIGHBOURS + 2 have
    stored vectors, unchanged. Hits keep their distances: the order alone changes."""
    return _reordered(index, vector, hits[:first]) + hits[first:]


def _reordered(index: SearchIndex, vector: np.ndarray, hits: list[Hit]) -> list[Hit]:
    rows = {n: index.rows_by_id[hit.id] for n, hit in enumerate(hits) if hit.id in index.rows_by_id}
    known = list(rows)  # live additions have no stored vector: their own likeness stands
    if not AUGMENT or index.metric != "angular" or len(known) < NEIGHBOURS + 2:
        return hits
    stored = _unit(index.stored_vectors_of([rows[n] for n in known]).astype(np.float64))
    likeness = stored @ stored.T
    nearest = np.argsort(-likeness, axis=1, kind="stable")[:, : NEIGHBOURS + 1]  # itself first
    weights = np.take_along_axis(likeness, nearest, axis=1).clip(0) ** POWER
    augmented = _unit(np.einsum("cn,cnd->cd", weights, stored[nearest]))
    score = np.array([1.0 - hit.distance**2 / 2 for hit in hits])  # Annoy's angular: sqrt(2 - 2 cos)
    # never below its own likeness: the query's own file and its exact copies stay first
    score[known] = np.maximum(score[known], augmented @ _unit(np.asarray(vector, np.float64)[None, :])[0])
    order = np.argsort(-score, kind="stable")
    return [hits[n] for n in order]


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
