"""Duplicates over an opened index: its verified pairs (a build finds them once per version and
stores them), and the groups they make at a threshold, or, in a version built before verified
copies, the groups of distance alone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imgsim.duplicates import copy_pairs, grouping
from imgsim.images import hashing
from imgsim.index import vectors as vector_math
from imgsim.index.depth import SHALLOW
from imgsim.search.annoy_index import SearchIndex


def _neighbours(index: SearchIndex) -> Callable[[int], tuple[list[int], list[float]]]:
    """A row's nearest rows: a copy is among an item's very nearest, Annoy's own depth finds it."""
    k = grouping.NEIGHBOURS + 1
    return lambda row: index.nearest_rows(index.stored_vector(row), k, SHALLOW)


def verified_pairs(
    index: SearchIndex,
    max_pixels: int,
    known: copy_pairs.Verdicts | None = None,
    features=None,
    rows=None,
    hashes: np.ndarray | None = None,
) -> tuple[float, list[copy_pairs.Pair], copy_pairs.Verdicts]:
    """copy_pairs.find_pairs over an opened index, within the reach of its calibrated duplicate distance
    (``features(row)``: the build's; by default computed from the files as needed), for the
    candidates of ``rows`` (default: every row), and the pairs whose stored ``hashes`` are near."""
    reach = round(copy_pairs.REACH * grouping.threshold_of(index.manifest.thresholds), 6)
    features = features or copy_pairs.features_of(index.collection_root, index.items, max_pixels)
    hashed = {}
    for a, b in hashing.near_pairs(hashes, copy_pairs.HASH_NEAR, rows) if hashes is not None else ():
        vectors = index.stored_vector(a)[None, :], index.stored_vector(b)
        hashed[a, b] = float(vector_math.distances(*vectors, index.metric)[0])
    neighbours = _neighbours(index)
    found = copy_pairs.find_pairs(index.items, neighbours, reach, features, known, rows=rows, hashed=hashed)
    return (reach, *found)


def find_duplicates(index: SearchIndex, threshold: float | None = None, hidden=(), bar: bool = False):
    """The groups of copies: from the pairs the build verified (copies.json), filtered by
    ``threshold``; in a version built before them, grouping.find_groups by distance alone."""
    stored = copy_pairs.load(index.version)
    if stored is not None:
        reach, pairs = stored
        limit = reach if threshold is None else min(threshold, reach)
        return limit, grouping.from_pairs(index.items, pairs, limit, index.collection_root, hidden)
    from tqdm import tqdm

    limit = grouping.threshold_of(index.manifest.thresholds, threshold)
    vector = index.stored_vector

    def progress(rows):
        return tqdm(rows, desc="Duplicates", unit="img", disable=not bar)

    def distance(a: int, b: int) -> float:
        return float(vector_math.distances(vector(a)[None, :], vector(b), index.metric)[0])

    root = index.collection_root
    groups = grouping.find_groups(index.items, _neighbours(index), limit, root, hidden, progress, distance)
    return limit, groups
