"""Benchmark section 16 (scenes): scene and class retrieval as the service ranks, with and without
the shortlist's augmentation (search/shortlist.py) and the same-scene level (images/same_scene.py),
side by side in one run.

holidays_a (405 photos, 150 queries) and flowers5 (4,317 photos) indexed with the defaults and the
shared EfficientNet-Lite0. Holidays: each query searched by id as the service does (copies
verified first), scored with the Holidays mAP. flowers5: each photo searched by id, P@1 and P@10 of
the first page, mAP over the whole ranking (the service's first 40, then exact search's order);
and edited copies of 200 photos searched as uploads, rank 1 of the original per edit kind.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import FLOWERS, table
from imgsim import config
from imgsim.images import edits
from imgsim.indexing import indexer
from imgsim.live import live
from imgsim.measure import scenes, scoring
from imgsim.models import embedders, runtimes
from imgsim.query import pipeline
from imgsim.search import annoy_index, shortlist, verification

HOLIDAYS = config.SHARED_DIR / "datasets" / "holidays_a"
COLUMNS = {  # (the shortlist augmented, same-scene results checked and moved up) -> label
    (False, False): "the embedding's order",
    (True, False): "shortlist augmented",
    (True, True): "and same scene",
}


def bench_scenes(quick: bool) -> tuple[dict, str]:
    if not config.SHARED_MODEL.is_file() or not FLOWERS.is_dir() or not HOLIDAYS.is_dir():
        return {}, f"skipped: needs the shared model, flowers5 and holidays_a in {config.SHARED_DIR}"
    sample = 50 if quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-bench-scenes-"))
    results: dict[str, dict] = {label: {} for label in COLUMNS.values()}
    try:
        holidays = _index(HOLIDAYS, workdir / "holidays")
        flowers = _index(FLOWERS, workdir / "flowers")
        cfg = config.Config(model=str(config.SHARED_MODEL))
        embedder = embedders.for_index(flowers.manifest, flowers.version, runtimes.of(cfg))
        groups = scenes.read_groups(HOLIDAYS / "gt.json")
        for (augment, same_scene), label in COLUMNS.items():
            shortlist.AUGMENT, verification.SAME_SCENE = augment, same_scene
            found = scenes.evaluate_groups(holidays, groups)
            results[label] |= {"holidays_map": found["holidays_map"], "holidays_p@1": found["p@1"]}
            labelled = ("same_scene_relevant", "same_scene_other")
            results[label] |= {f"holidays_{key}": found[key] for key in labelled}
            results[label] |= _classes(flowers, 500 if quick else None)
            results[label] |= scoring.evaluate_edits(flowers, embedder, sample, verify=True)
            print(f"  scenes {label} done", file=sys.stderr, flush=True)
    finally:
        shortlist.AUGMENT, verification.SAME_SCENE = True, True
        shutil.rmtree(workdir, ignore_errors=True)
    return results, _report(results, sample)


def _index(folder: Path, workdir: Path) -> annoy_index.SearchIndex:
    cfg = config.Config(model=str(config.SHARED_MODEL), index_dir=workdir)
    indexer.build_index(folder, cfg, progress=False, log=lambda line: None)
    return annoy_index.open_index(workdir)


def _classes(index: annoy_index.SearchIndex, count: int | None) -> dict[str, float]:
    """P@1 and P@10 of each photo's first page searched by id (its class: its folder), and mAP over
    the service's first RERANK then exact search's order; over the first ``count`` photos if given."""
    labels = np.array([item.path.split("/")[0] for item in index.items])
    unit = index.stored_vectors() / np.linalg.norm(index.stored_vectors(), axis=1, keepdims=True)
    first, tenth, aps, scenes_of = [], [], [], {True: 0, False: 0}
    for row in range(len(index.items) if count is None else min(count, len(index.items))):
        item = index.items[row]
        found = pipeline.search_id(
            index, live.LiveView(), item.id, index.stored_vector(row), [], verification.RERANK
        )
        shown = [index.rows_by_id[hit.id] for hit in found.hits if hit.id != item.id]
        for hit in found.hits:
            if hit.match == "same_scene":
                scenes_of[labels[index.rows_by_id[hit.id]] == labels[row]] += 1
        rest = [r for r in np.argsort(-(unit @ unit[row]), kind="stable") if r != row and r not in set(shown)]
        relevant = labels[shown + rest] == labels[row]
        first.append(float(relevant[0]))
        tenth.append(float(relevant[:10].mean()))
        aps.append(scoring.average_precision(relevant))
    scored = {"p@1": float(np.mean(first)), "p@10": float(np.mean(tenth)), "map": float(np.mean(aps))}
    return scored | {"same_scene_of_its_class": scenes_of[True], "same_scene_of_another": scenes_of[False]}


def _pair(found: dict, first: str, second: str) -> str:
    return f"{found[first]} / {found[second]}"


def _report(results: dict, sample: int) -> str:
    labels = list(results)
    rows = [
        ["Holidays mAP (150 queries)"] + [f"{results[x]['holidays_map']:.3f}" for x in labels],
        ["Holidays P@1"] + [f"{results[x]['holidays_p@1']:.3f}" for x in labels],
        ["flowers5 P@1"] + [f"{results[x]['p@1']:.3f}" for x in labels],
        ["flowers5 P@10"] + [f"{results[x]['p@10']:.3f}" for x in labels],
        ["flowers5 mAP"] + [f"{results[x]['map']:.3f}" for x in labels],
        ["Holidays results labelled same scene: of the query's scene / others"]
        + [_pair(results[x], "holidays_same_scene_relevant", "holidays_same_scene_other") for x in labels],
        ["flowers5 results labelled same scene: of its class / of another"]
        + [_pair(results[x], "same_scene_of_its_class", "same_scene_of_another") for x in labels],
    ]
    rows += [
        [f"rank 1, {name} ({sample} photos)"] + [f"{results[x]['edits'][name]['rank1']:.3f}" for x in labels]
        for name in edits.EDITS
    ]
    rows.append(
        ["verification ms p50, edited copies"] + [f"{results[x]['verify_ms_p50']:.1f}" for x in labels]
    )
    text = "Scene and class retrieval as the service ranks, the defaults and EfficientNet-Lite0:\n\n"
    return text + table(["measure"] + labels, rows)
