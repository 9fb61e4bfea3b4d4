"""Duplicates over an opened index: its verified pairs (a build finds them once per version and
stores them), and the groups they make at a threshold."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence, Set

import numpy as np

from imgsim.duplicates import copy_pairs, grouping, keeper, pair_evidence
from imgsim.duplicates.decisions import Decided, Decision
from imgsim.images import hashing, piece_search, shared_features
from imgsim.index import vectors as vector_math
from imgsim.index.depth import SHALLOW
from imgsim.search.annoy_index import SearchIndex


def _neighbours(index: SearchIndex) -> Callable[[int], tuple[list[int], list[float]]]:
    """A row's nearest rows: a copy is among an item's very nearest, Annoy's own depth finds it (a
    half crop among the PIECE_NEAREST)."""
    k = max(grouping.NEIGHBOURS, copy_pairs.PIECE_NEAREST) + 1
    return lambda row: index.nearest_rows(index.stored_vector(row), k, SHALLOW)


def reach_of(index: SearchIndex) -> float:
    """How far apart in the index's space candidate copies may lie: REACH times the calibrated
    duplicate distance; 0 where the build calibrated none (--recall-sample 0, metric dot), so
    that only the same bytes, the same vectors and near hashes are checked."""
    thresholds = index.manifest.thresholds
    return round(copy_pairs.REACH * thresholds.duplicate, 6) if thresholds is not None else 0.0


def verified_pairs(
    index: SearchIndex,
    max_pixels: int,
    known: copy_pairs.Verdicts | None = None,
    features=None,
    rows=None,
    hashes: np.ndarray | None = None,
    descriptors: tuple[np.ndarray, np.ndarray] | None = None,
    redo_refusals: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[float, list[copy_pairs.Pair], copy_pairs.Verdicts]:
    """copy_pairs.find_pairs over an opened index, within the reach of its calibrated duplicate distance
    (``features(row)``: the build's; by default computed from the files as needed), for the
    candidates of ``rows`` (default: every row), the pairs whose stored ``hashes`` are near, those
    whose stored ``descriptors`` (all of them, and the row of each) share many words, and the small
    files found in pictures they fit in (images/piece_search.py; ``log`` says where there were too
    many to look at)."""
    reach = reach_of(index)
    features = features or pair_evidence.features_of(index.collection_root, index.items, max_pixels)
    near_hashes: set[tuple[int, int]] = set()
    if hashes is not None:
        near_hashes = hashing.near_pairs(hashes, copy_pairs.HASH_NEAR, rows)
        near_hashes = hashing.nearest_of_each(hashes, near_hashes, copy_pairs.HASH_PER_ROW)
    hashed = _with_distances(index, near_hashes)
    shared = _with_distances(index, shared_features.near_pairs(*descriptors, rows) if descriptors else {})
    root = index.collection_root
    evidence = pair_evidence.Evidence(
        features,
        mirrored=pair_evidence.features_of(root, index.items, max_pixels, mirrored=True),
        pictures=pair_evidence.pictures_of(root, index.items, max_pixels),
        taken=pair_evidence.capture_times_of(root, index.items),
        sizes=pair_evidence.sizes_of(root, index.items),
        grays=pair_evidence.grays_of(root, index.items, max_pixels),
    )
    thresholds = index.manifest.thresholds
    within = thresholds.duplicate if thresholds is not None else 0.0
    proposals = copy_pairs.Proposals(
        hashed, shared, _with_distances(index, _pieces(index, evidence, max_pixels, rows, log))
    )
    found = copy_pairs.find_pairs(
        index.items,
        _neighbours(index),
        reach,
        evidence,
        known,
        rows=rows,
        proposals=proposals,
        mirror_within=within,
        redo_refusals=redo_refusals,
    )
    return (reach, *found)


def _pieces(
    index: SearchIndex, evidence: pair_evidence.Evidence, max_pixels: int, rows, log: Callable[[str], None]
) -> dict[tuple[int, int], float]:
    """The pairs piece_search proposes: a small file whose pixels lie in a picture it fits in."""
    assert evidence.sizes is not None
    count = len(index.items)
    sizes = [evidence.sizes(row) for row in range(count)] if count <= piece_search.MAX_FILES else []
    small_grays = pair_evidence.small_grays_of(index.collection_root, index.items, max_pixels)
    found = piece_search.near_pairs(sizes, small_grays, rows) if sizes else None
    if found is None and count:
        log(
            f"Pieces not looked for in every picture: more than {piece_search.MAX_FILES:,} files, "
            f"{piece_search.MAX_PICTURES:,} pictures to look in or {piece_search.MAX_PAIRS:,} pairs of a "
            "small file and a picture it fits in (crops of small photos may be missed)."
        )
    return found or {}


def _with_distances(index: SearchIndex, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """Each pair of rows with the distance of their stored vectors."""
    found = {}
    for a, b in pairs:
        vectors = index.stored_vector(a)[None, :], index.stored_vector(b)
        found[a, b] = float(vector_math.distances(*vectors, index.metric)[0])
    return found


Stored = tuple[float, list[copy_pairs.Pair]]  # the reach the pairs were looked for within, the pairs


def stored_pairs(index: SearchIndex) -> Stored:
    """The pairs the build verified (copies.json); a version built before them is refused
    (ValueError), never grouped here: that took a core for minutes under a request's lock."""
    stored = copy_pairs.load(index.version)
    if stored is None:
        raise ValueError("this index was built before verified copies: rebuild it with img2vec.py")
    return stored


def effective_limit(stored: Stored, threshold: float | None) -> float:
    """The distance a request's groups are cut at: its threshold, at most the stored pairs' reach."""
    reach = stored[0]
    return reach if threshold is None else min(threshold, reach)


def groups_at(
    index: SearchIndex,
    stored: Stored,
    limit: float,
    hidden=(),
    decided: Decided | None = None,
    rules: Sequence[str] = keeper.DEFAULT_RULES,
) -> list[grouping.Group]:
    """The groups the stored pairs within ``limit`` make (less what ``decided`` settled), each
    with its copy to keep by ``rules``: one pass."""
    root = index.collection_root
    return grouping.from_pairs(index.items, stored[1], limit, root, hidden, decided, rules)


STATES = ("open", "resolved", "all")  # which groups a listing asks for


def _in_force(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.state != "restoring"]


def undecided_groups(
    index: SearchIndex,
    stored: Stored,
    limit: float,
    decisions: list[Decision],
    rules: Sequence[str] = keeper.DEFAULT_RULES,
) -> list[grouping.Group]:
    """The groups nobody decided about, as the version holds them: what a listing computes once
    (``listed`` takes out what was deleted since, request by request)."""
    decided = Decided.of(index.items, _in_force(decisions))
    return groups_at(index, stored, limit, decided=decided, rules=rules)


def listed(
    index: SearchIndex,
    undecided: list[grouping.Group],
    decisions: list[Decision],
    hidden: Set[int],
    state: str,
) -> list[grouping.Group]:
    """The groups ``state`` asks for: the undecided ones less the items ``hidden`` (deleted since
    the build), and one resolved group per decision in force."""
    found = []
    if state != "resolved":
        kept = [
            dataclasses.replace(g, members=[m for m in g.members if m.id not in hidden]) for g in undecided
        ]
        found += [group for group in kept if len(group.members) > 1]
    if state != "open":
        in_force = _in_force(decisions)
        found += grouping.resolved_groups(index.items, in_force, index.collection_root, hidden)
    return found


def find_duplicates(
    index: SearchIndex,
    threshold: float | None = None,
    hidden: Set[int] = frozenset(),
    decisions: list[Decision] | None = None,
    state: str = "open",
    rules: Sequence[str] = keeper.DEFAULT_RULES,
) -> tuple[float, list[grouping.Group]]:
    """The groups of copies at ``threshold`` (at most the reach the pairs were looked for within)
    in ``state``, given the ``decisions`` made about them."""
    stored = stored_pairs(index)
    limit = effective_limit(stored, threshold)
    made = decisions or []
    return limit, listed(index, undecided_groups(index, stored, limit, made, rules), made, hidden, state)
