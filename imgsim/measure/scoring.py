"""Measure retrieval quality on labelled photos, to choose a model, a reduction and a tree count.

    python evaluate.py DATASET [--model ...] [--reduce none|pca|autoencoder] [--trees 100]

DATASET is a folder whose sub-folders are classes. Every image is indexed, then used as a query
against all the others (leave-one-out). Printed: P@1, P@5 and P@10 of the Annoy answers (the
share of results of the query's class), mAP over the exact ranking of the whole collection, and
recall@10 of Annoy against exact (brute-force) search in the same vector space. Then edited
copies (edits.py: re-encoded, resized, turned, bordered, cropped, gray...) of a fixed sample are
searched like uploads: the share whose original comes back first and in the top 10, per edit, and
the recall@10 of those searches against exact search.
The embeddings are kept in INDEX_DIR/eval/<dataset> so that trying another reduction or tree
count re-embeds nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from imgsim.duplicates import copy_pairs
from imgsim.images import edits, imaging
from imgsim.index.depth import EXACT, TUNED, Depth
from imgsim.index.vectors import normalise, similarities_to_others
from imgsim.live import live
from imgsim.models import embedders, tta
from imgsim.query import pipeline
from imgsim.search import annoy_index, tuning


def precision_at_k(retrieved_labels: list, query_label, k: int) -> float:
    """Share of the first k results that have the query's label."""
    top = retrieved_labels[:k]
    return sum(label == query_label for label in top) / k


def average_precision(ranked_relevance: np.ndarray) -> float:
    """AP of one ranking: mean of precision@i over the ranks i that hold a relevant item."""
    relevant = np.asarray(ranked_relevance, dtype=bool)
    if not relevant.any():
        return 0.0
    hits = np.cumsum(relevant)
    ranks = np.flatnonzero(relevant) + 1
    return float(np.mean(hits[relevant] / ranks))


def recall_against_exact(approximate: list[int], exact: list[int]) -> float:
    """Share of the exact top-k that the approximate answer found."""
    return len(set(approximate) & set(exact)) / len(exact)


def class_folders(dataset: Path) -> list[str]:
    """The sub-folders of ``dataset`` that hold images: the classes of a labelled collection."""
    return sorted(
        folder.name
        for folder in Path(dataset).iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and any(imaging.is_image_path(p) for p in folder.rglob("*"))
    )


def evaluate_index(index: annoy_index.SearchIndex, k: int = 10, depth: Depth = TUNED) -> dict[str, float]:
    """Leave-one-out quality of an opened index whose paths start with the class folder."""
    labels = np.array([item.path.split("/")[0] for item in index.items])
    count = len(labels)
    if len(set(labels)) < 2:
        raise ValueError("the dataset needs at least two class sub-folders")
    unit = normalise(index.stored_vectors())
    scores: dict[str, list[float]] = {"p@1": [], "p@5": [], "p@10": [], "map": [], "recall@10": []}
    query_seconds = 0.0
    for start in range(0, count, 256):
        rows = np.arange(start, min(start + 256, count))
        sims = similarities_to_others(unit, rows)
        order = np.argsort(-sims, axis=1)[:, :-1]  # the query itself sorts last
        for row, ranking in zip(rows, order, strict=True):
            began = time.perf_counter()
            found, _ = index.nearest_rows(index.stored_vector(int(row)), k + 1, depth)
            query_seconds += time.perf_counter() - began
            found = [r for r in found if r != row][:k]
            found_labels = labels[found].tolist()
            for cut in (1, 5, 10):
                scores[f"p@{cut}"].append(precision_at_k(found_labels, labels[row], cut))
            scores["map"].append(average_precision(labels[ranking] == labels[row]))
            scores["recall@10"].append(recall_against_exact(found, ranking[:k].tolist()))
    result = {name: float(np.mean(values)) for name, values in scores.items()}
    result["query_ms"] = 1000 * query_seconds / count
    result["items"] = count
    return result


def evaluate_edits(
    index: annoy_index.SearchIndex,
    embedder: embedders.Embedder,
    sample: int = 50,
    depth: Depth = TUNED,
    mode: str = "none",
    k: int = 10,
    verify: bool = False,
) -> dict:
    """Search with every edit of ``sample`` items (a seed apart from the build's own sample) as an
    upload would (``verify``: its candidates verified, as the service does); per edit the share of
    originals at rank 1 and in the top k, and overall the recall@k of those searches against exact
    search in the same space, and the verification's milliseconds per search."""
    found: dict[str, list[tuple[bool, bool, bool]]] = {name: [] for name in edits.EDITS}
    recalls, seconds, checking = [], 0.0, []
    same = _copies_of(index)
    nothing_live = live.LiveView()  # a measurement's own index: no additions or deletions over it
    for row in tuning.sample_rows(len(index.items), sample, seed=1):
        item = index.items[row]
        try:
            image = imaging.open_rgb(index.collection_root / item.path, min_side=embedder.decode_side)
        except imaging.UnreadableImage:
            continue
        # one photo's edits (and their variants) at a time: camera photos' copies add up fast
        edited = [tta.variants(edits.apply(name, image), mode) for name in edits.EDITS]
        embedded = embedder.embed_images([v for variants in edited for v in variants])
        start = 0
        for name, variants in zip(edits.EDITS, edited, strict=True):
            mine, start = embedded[start : start + len(variants)], start + len(variants)
            began = time.perf_counter()
            found_edit = pipeline.search_embedded(
                index, nothing_live, variants[0], mine, k, depth, verify=verify
            )
            seconds += time.perf_counter() - began - found_edit.verify_seconds
            checking += [found_edit.verify_seconds] if verify else []
            ids = [hit.id for hit in found_edit.hits]
            first_is = bool(ids) and ids[0] in {item.id} | same.get(item.id, set())  # or a copy of it
            found[name].append((ids[:1] == [item.id], item.id in ids, first_is))
            spaced = index.to_index_space(mine[:1])[0]
            approximate, _ = index.nearest_rows(spaced, k, depth)
            exact, _ = index.nearest_rows(spaced, k, EXACT)
            recalls.append(recall_against_exact(approximate, exact))
    per_edit = {
        name: {
            "rank1": float(np.mean([a for a, _, _ in hits])),
            f"top{k}": float(np.mean([b for _, b, _ in hits])),
            "rank1_or_copy": float(np.mean([c for _, _, c in hits])),
        }
        for name, hits in found.items()
        if hits
    }
    count = max(1, len(recalls))
    return {
        "edits": per_edit,
        f"edited_recall@{k}": float(np.mean(recalls or [0.0])),
        "edited_query_ms": 1000 * seconds / count,
    } | _milliseconds("verify", checking)


def _copies_of(index: annoy_index.SearchIndex) -> dict[int, set[int]]:
    """Per id, the ids of the copies of it the build verified (the collection's own duplicates:
    the same photo twice, which is as much the original as the other)."""
    stored = copy_pairs.load(index.version)
    found: dict[int, set[int]] = {}
    for pair in stored[1] if stored is not None else []:
        a, b = index.items[pair.a].id, index.items[pair.b].id
        found.setdefault(a, set()).add(b)
        found.setdefault(b, set()).add(a)
    return found


def _milliseconds(name: str, seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    p50, p95 = (1000 * float(np.percentile(seconds, q)) for q in (50, 95))
    return {f"{name}_ms_p50": p50, f"{name}_ms_p95": p95}
