"""Scene retrieval scored as the literature scores it: Holidays-style groups and the Holidays mAP.

A groups file (``gt.json``) maps each query photo to the photos of the same scene or object:
``{"100000.jpg": ["100001.jpg", "100002.jpg"], ...}``, names relative to the collection folder
(or bare file names where they are unique in it). Each query is searched as the service searches
by id (its copies verified first); the query itself is left out of its own list; each query's
average precision is the area under its precision-recall curve by trapezoids, as INRIA's
``holidays_map.py`` computes it (Jégou, Douze & Schmid, ECCV 2008), a relevant photo missing from
the list counting as not found; the mean over the queries is ``holidays_map``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgsim.index import store
from imgsim.index.depth import TUNED, Depth
from imgsim.live import live
from imgsim.query import pipeline
from imgsim.search import annoy_index


def holidays_ap(ranks: Sequence[int], relevant: int) -> float:
    """The average precision of one query: ``ranks`` are the 0-based places of its relevant photos
    in its list (the query left out), nearest first; ``relevant``: how many there are in all."""
    ap, step = 0.0, 1.0 / relevant
    for found, rank in enumerate(sorted(ranks)):
        before = 1.0 if rank == 0 else found / rank
        after = (found + 1) / (rank + 1)
        ap += (before + after) * step / 2
    return ap


def read_groups(path: Path) -> dict[str, list[str]]:
    """A groups file: a JSON object of query name -> the names of its relevant photos."""
    try:
        groups = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the groups file {path}: {error}") from None
    if not isinstance(groups, dict) or not all(
        isinstance(q, str) and isinstance(r, list) and r and all(isinstance(n, str) for n in r)
        for q, r in groups.items()
    ):
        raise ValueError(f"{path} must map each query's name to a list of the names of its relevant photos")
    return groups


def _ids_by_name(items: list[store.Item]) -> dict[str, int]:
    """Each item's id under its path and, where no other file has it, its bare name."""
    names: dict[str, list[int]] = {}
    for item in items:
        names.setdefault(item.path.rsplit("/", 1)[-1], []).append(item.id)
    unique = {name: ids[0] for name, ids in names.items() if len(ids) == 1}
    return unique | {item.path: item.id for item in items}


def evaluate_groups(
    index: annoy_index.SearchIndex, groups: dict[str, list[str]], depth: Depth = TUNED
) -> dict[str, float]:
    """The Holidays mAP of an opened index over ``groups``, and the share of queries whose first
    result is relevant; a name the index does not hold is an error (ValueError)."""
    ids = _ids_by_name(index.items)
    missing = sorted({n for q, r in groups.items() for n in [q, *r] if n not in ids})
    if missing:
        raise ValueError(f"{len(missing)} photos of the groups file are not in the index, e.g. {missing[0]}")
    view, everything = live.LiveView(), len(index.items) - 1
    aps, firsts, scenes = [], [], {True: 0, False: 0}
    for query, relevant in groups.items():
        query_id, wanted = ids[query], {ids[name] for name in relevant}
        vector = index.stored_vector(index.rows_by_id[query_id])
        found = pipeline.search_id(index, view, query_id, vector, [], everything, depth)
        listed = [hit.id for hit in found.hits if hit.id != query_id]
        ranks = [rank for rank, item_id in enumerate(listed) if item_id in wanted]
        aps.append(holidays_ap(ranks, len(wanted)))
        firsts.append(bool(listed) and listed[0] in wanted)
        for hit in found.hits:
            if hit.match == "same_scene":
                scenes[hit.id in wanted] += 1
    return {
        "holidays_map": float(np.mean(aps)),
        "queries": len(aps),
        "p@1": float(np.mean(firsts)),
        "same_scene_relevant": scenes[True],  # results labelled same_scene that are of the scene
        "same_scene_other": scenes[False],  # and that are not
    }
