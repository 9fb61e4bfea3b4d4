"""How like the query each result is, in the terms of the match labels (models/reference.py).

Results are ranked in the index's space, which holds the collection's own statistics (its mean
direction taken off, a reduction trained on it); labels must not, so each shown result's likeness
is the cosine distance between the full embeddings the network gave the query and the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from imgsim.models.reference import cosine_distance
from imgsim.search.annoy_index import Hit, SearchIndex


def with_likeness(
    index: SearchIndex,
    queries: list[np.ndarray],
    hits: list[Hit],
    others: Mapping[int, np.ndarray] | None = None,
) -> list[Hit]:
    """``hits`` with their likeness to the nearest of ``queries`` (full embeddings; several for a
    combined query), the results' own from the index or ``others`` (id -> full embedding: live
    additions); None where either is unknown."""
    if not queries or not hits:
        return hits
    found = []
    for hit in hits:
        row = index.rows_by_id.get(hit.id)
        vector = (others or {}).get(hit.id) if row is None else index.raw_vector(row)
        if vector is None:
            found.append(hit)
            continue
        likeness = float(np.min(cosine_distance(vector, np.stack(queries))))
        found.append(dataclasses.replace(hit, likeness=round(likeness, 6)))
    return found
