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

SAME_BYTES = 1e-4  # a distance this small is the query's own file, whatever verification says
STRONG = 40  # agreeing matches that settle it (look-alikes that got past the checks had 12-13)
RERANK = 20  # candidates verified per search: on flowers5 the original of a 70 % crop, a 90 degree
# turn or a q10 re-encode is among the 20 nearest 0.98 of the time


@functools.lru_cache(maxsize=4)  # a worker searches one version, and for a while the one before
def stored_features(version: Path) -> keypoints.VersionKeypoints | None:
    return keypoints.load(version)


def verified_first(
    index: SearchIndex, image: Image.Image, hits: list[Hit], k: int, offset: int = 0
) -> list[Hit]:
    """The first ``k`` of ``hits`` with those that show the query's very picture first (on the
    first page only: a later page keeps the embedding's order, ``offset`` into it)."""
    stored = stored_features(index.version)
    if stored is None or not hits or offset:
        return hits[:k]
    return _promoted(index, stored, geometry.features(image), hits, k)


def verified_first_by_id(
    index: SearchIndex, item_id: int, hits: list[Hit], k: int, offset: int = 0
) -> list[Hit]:
    """The same for a search by an indexed image, with its stored features (none for a live
    addition: then the embedding's order stands)."""
    stored = stored_features(index.version)
    row = index.rows_by_id.get(item_id)
    query = stored.get(row) if stored is not None and row is not None and row < len(stored) else None
    if query is None or not hits or offset:
        return hits[:k]
    return _promoted(index, stored, query, hits, k)


def _promoted(
    index: SearchIndex, stored: keypoints.VersionKeypoints, query: geometry.Features, hits: list[Hit], k: int
) -> list[Hit]:
    found = []
    for hit in hits[:RERANK]:
        row = index.rows_by_id.get(hit.id)  # live additions have no stored features
        theirs = stored.get(row) if row is not None and row < len(stored) else None
        match = geometry.verify(query, theirs) if theirs is not None else None
        if match is not None:
            found.append((match, hit))
            if match.inliers >= STRONG:
                break  # the query's picture beyond doubt: the rest need not be checked
    if not found:
        return hits[:k]
    ranked = sorted(found, key=lambda pair: -pair[0].inliers)
    verified = [dataclasses.replace(hit, verified=match.to_dict()) for match, hit in ranked]
    taken, nearest = {hit.id for _, hit in found}, min(hit.distance for _, hit in found)
    # what could not be checked (a live addition, a file without features) or is the query's own
    # bytes keeps its place before a verified result further away: verification only promotes
    others = [hit for hit in hits if hit.id not in taken]
    ahead = [
        hit for hit in others
        if hit.distance <= SAME_BYTES or (hit.distance < nearest and not _checkable(index, stored, hit))
    ]  # fmt: skip
    return (ahead + verified + [hit for hit in others if hit not in ahead])[:k]


def _checkable(index: SearchIndex, stored: keypoints.VersionKeypoints, hit: Hit) -> bool:
    row = index.rows_by_id.get(hit.id)
    return row is not None and row < len(stored) and stored.get(row) is not None
