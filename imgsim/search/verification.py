"""Finding the original: a search's nearest candidates checked for being the same picture.

The embedding ranks by likeness; an edited copy's original can sit below photos that merely look
alike (a 70 % crop found its original first 0.83 of the time on flowers5). The RERANK nearest are
verified against the query with the version's stored features (index/keypoints.py), and the
verified ones come first, most agreeing matches first, each with where it lies in the query and
the query in it (docs/benchmarks.md section 12).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from PIL import Image

from imgsim.images import geometry
from imgsim.index import keypoints
from imgsim.search.ann import Hit, SearchIndex

STRONG = 40  # agreeing matches that settle it (look-alikes that got past the checks had 12-13)
RERANK = 20  # candidates verified per search: on flowers5 the original of a 70 % crop, a 90 degree
# turn or a q10 re-encode is among the 20 nearest 0.98 of the time


@functools.lru_cache(maxsize=4)  # a worker searches one version, and for a while the one before
def stored_features(version: Path) -> keypoints.Keypoints | None:
    return keypoints.load(version)


def verified_first(
    index: SearchIndex, image: Image.Image, hits: list[Hit], k: int, offset: int = 0
) -> list[Hit]:
    """The first ``k`` of ``hits`` with those that show the query's very picture first (on the
    first page only: a later page keeps the embedding's order, ``offset`` into it)."""
    stored = stored_features(index.version)
    if stored is None or not hits or offset:
        return hits[:k]
    query = geometry.features(image)
    found = []
    for hit in hits[:RERANK]:
        row = index.rows_by_id.get(hit.id)  # live additions have no stored features
        theirs = stored.get(row) if row is not None and row < len(stored) else None
        match = geometry.verify(query, theirs) if theirs is not None else None
        if match is not None:
            found.append((match, hit))
            if match.inliers >= STRONG:
                break  # the query's picture beyond doubt: the rest need not be checked
    first = [
        dataclasses.replace(hit, verified=match.to_dict())
        for match, hit in sorted(found, key=lambda p: -p[0].inliers)
    ]
    taken = {hit.id for _, hit in found}
    return (first + [hit for hit in hits if hit.id not in taken])[:k]
