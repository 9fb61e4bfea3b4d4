"""Benchmark section 8 (robust): finding the original from an edited copy, per descriptor option.

The whole of flowers5 is indexed with EfficientNet-Lite0 under each option in turn (average
pooling as before this round, then border trimming, GeM pooling and centring added one at a
time, then the defaults with query-side rotations); edited copies (edits.py, every kind at two
strengths) of a fixed sample are searched as uploads. Printed per option: the share of originals
at rank 1 and in the top 10 per edit, the search time, and leave-one-out P@1/P@10/mAP, so that no
option buys robustness with class retrieval. Then Annoy's depth at 100,000 vectors: the recall
curve on edited queries and the query time at the depth a build would choose.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import hash_lookup
from bench.common import FLOWERS, percentile, table
from imgsim import config
from imgsim.images import edits, hashing, imaging
from imgsim.index import recall
from imgsim.index.depth import EXACT_SEARCH_K
from imgsim.index.vectors import normalise
from imgsim.indexing import collection, indexer
from imgsim.live import live
from imgsim.measure import scoring
from imgsim.models import embedders, runtimes
from imgsim.query import pipeline
from imgsim.search import annoy_index, tuning

# (label, settings changed from the defaults, query-side tta, verified): each adds one thing to the
# one before; the embedding alone, then as the service searches: its candidates verified
OPTIONS = [
    ("before: avg", {"pooling": "avg", "trim_borders": False, "centre": "none"}, "none", False),
    ("+ trim", {"pooling": "avg", "centre": "none"}, "none", False),
    ("+ GeM", {"centre": "none"}, "none", False),
    ("+ centre = defaults, embedding alone", {}, "none", False),
    ("defaults + tta rotations", {}, "rotations", False),
    ("defaults, PCA-256", {"reduce": "pca", "dims": 256}, "none", False),
    ("the service: defaults, verified", {}, "none", True),
]


def _measure_option(workdir: Path, settings: dict, mode: str, sample: int, verify: bool) -> dict:
    """Build (or reuse) the index for ``settings`` and measure it."""
    base = config.Config(model=str(config.SHARED_MODEL), trees=100, index_dir=workdir / "index")
    cfg = base.replace(**settings)
    began = time.perf_counter()
    report = indexer.build_index(FLOWERS, cfg, progress=False, log=lambda line: None)
    index = annoy_index.open_index(cfg.index_dir)
    embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
    scores = scoring.evaluate_index(index) | scoring.evaluate_edits(
        index, embedder, sample, mode=mode, verify=verify
    )
    if verify:
        scores |= _novel_queries(index, embedder)
    took = time.perf_counter() - began
    print(f"  robustness {settings} {mode} verify={verify}: {took:.0f} s", file=sys.stderr, flush=True)
    return scores | {"build_s": round(report.seconds, 1), "search_k": index.manifest.search_k}


def _novel_queries(index: annoy_index.SearchIndex, embedder: embedders.Embedder) -> dict:
    """What verification costs a search whose picture the collection does not hold (nothing
    verifies, so every candidate and the mirrored check are paid): scikit-image's sample photos
    searched against the flowers; and the hash lookup over 100,000 stored hashes (random stand-ins)."""
    folder = collection.export_sample_images(Path(tempfile.mkdtemp(prefix="imgsim-bench-novel-")))
    seconds = []
    for path in sorted(folder.iterdir()):
        try:
            image = imaging.open_rgb(path, min_side=embedder.decode_side)
        except imaging.UnreadableImage:
            continue
        found = pipeline.search_embedded(index, live.LiveView(), image, embedder.embed_images([image]), 10)
        seconds.append(found.verify_seconds)
    shutil.rmtree(folder, ignore_errors=True)
    query = hashing.turned(imaging.open_rgb(next(FLOWERS.rglob("*.jpg"))))
    lookups = {size: hash_lookup.lookup_ms(size, query) for size in (100_000, 1_000_000)}
    return {
        "novel_verify_ms_p50": 1000 * float(np.median(seconds)),
        "novel_verify_ms_p95": 1000 * float(np.percentile(seconds, 95)),
        "novel_queries": len(seconds),
        "hash_lookup_100k_ms_p50": lookups[100_000][0],
        "hash_scan_100k_ms_p50": lookups[100_000][1],
        "hash_lookup_1m_ms_p50": lookups[1_000_000][0],
        "hash_scan_1m_ms_p50": lookups[1_000_000][1],
    }


def _at_100k(workdir: Path, quick: bool) -> tuple[list[dict], list[list]]:
    """Annoy over 100,000 vectors shaped like the collection's (flowers5's own and blends of two of
    them with noise: a stand-in, there are not 100,000 photos here), queried with the real edited
    copies a build measures with; the depth chosen for 0.98 and its query time. Once with the
    defaults' 1280-d vectors, once reduced to 256-d by PCA."""
    data, rows = [], []
    for reduce in ("none", "pca"):
        cfg = config.Config(model=str(config.SHARED_MODEL), index_dir=workdir / "index", reduce=reduce)
        indexer.build_index(FLOWERS, cfg, progress=False, log=lambda line: None)
        index = annoy_index.open_index(workdir / "index")
        with np.load(index.version / tuning.CALIBRATION_FILE) as saved:
            queries = index.to_index_space(saved["vectors"])
        found, curve_rows = _large_curve(workdir, index.stored_vectors(), queries, quick)
        data.append(found | {"reduce": reduce})
        rows += curve_rows
    return data, rows


def _large_curve(
    workdir: Path, real: np.ndarray, queries: np.ndarray, quick: bool
) -> tuple[dict, list[list]]:
    count = 25_000 if quick else 100_000
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(real), (2, count - len(real)))
    mix = rng.uniform(0.2, 0.8, (count - len(real), 1)).astype(np.float32)
    blends = mix * real[a] + (1 - mix) * real[b] + rng.normal(0, 0.01, (count - len(real), real.shape[1]))
    matrix = np.concatenate([real, normalise(blends.astype(np.float32))])
    began = time.perf_counter()
    annoy_index.build(matrix, workdir / "large.ann", "angular", 100)
    build_s = time.perf_counter() - began
    annoy = annoy_index.load(workdir / "large.ann", matrix.shape[1])
    curve = recall.calibrate(annoy, matrix, queries, 0.98, 100)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        if curve.search_k == EXACT_SEARCH_K:
            recall.exact_top(matrix, query[None, :], 10, "angular")
        else:
            annoy_index.query(annoy, query, 10, curve.search_k)
        latencies.append(1000 * (time.perf_counter() - started))
    rows = [[f"{count:,}", matrix.shape[1], p.search_k, p.recall, p.ms] for p in curve.points]
    data = {
        "items": count,
        "build_s": round(build_s, 1),
        "curve": curve.to_dict(),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
    }
    return data, rows


def _verify_ms(result: dict) -> str:
    if "verify_ms_p50" not in result:
        return "-"
    return f"{result['verify_ms_p50']:.1f} / {result['verify_ms_p95']:.1f}"


def bench_robustness(quick: bool) -> tuple[dict, str]:
    if not config.SHARED_MODEL.is_file() or not FLOWERS.is_dir():
        return {}, f"skipped: needs the shared model and flowers5 in {config.SHARED_DIR}"
    sample = 50 if quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-bench-robust-"))
    results = {}
    try:
        for label, settings, mode, verify in OPTIONS:
            results[label] = _measure_option(workdir, settings, mode, sample, verify)
        large, curve_rows = _at_100k(workdir, quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    labels = [label for label, *_ in OPTIONS]
    rows = [
        [name]
        + [
            f"{results[x]['edits'][name]['rank1']:.3f} / {results[x]['edits'][name]['top10']:.2f}"
            for x in labels
        ]
        for name in edits.EDITS
    ]
    for metric in ("p@1", "p@10", "map"):
        rows.append([f"class {metric} (leave-one-out)"] + [f"{results[x][metric]:.3f}" for x in labels])
    rows.append(["search ms (edited queries)"] + [f"{results[x]['edited_query_ms']:.2f}" for x in labels])
    rows.append(["search_k chosen (0 = exact)"] + [results[x]["search_k"] for x in labels])
    rows.append(["verification ms p50 / p95"] + [_verify_ms(results[x]) for x in labels])
    rows.append(
        ["verification ms p50 / p95, photos the collection lacks"]
        + [
            f"{results[x]['novel_verify_ms_p50']:.1f} / {results[x]['novel_verify_ms_p95']:.1f}"
            if "novel_verify_ms_p50" in results[x]
            else "-"
            for x in labels
        ]
    )
    rows.append(
        ["hash lookup over 1,000,000 hashes, ms p50 (every row compared)"]
        + [
            f"{results[x]['hash_lookup_1m_ms_p50']:.2f} ({results[x]['hash_scan_1m_ms_p50']:.2f})"
            if "hash_lookup_1m_ms_p50" in results[x]
            else "-"
            for x in labels
        ]
    )
    rows.append(
        ["rank 1: the original or a copy of it the build verified"]
        + [
            f"{min(e['rank1_or_copy'] for e in results[x]['edits'].values()):.3f} (lowest edit)"
            for x in labels
        ]
    )
    text = f"Rank 1 / top 10 of the original, {sample} photos x {len(edits.EDITS)} edits, 4,317 indexed:\n\n"
    text += table(["edit", *labels], rows)
    text += f"\n\nAnnoy at {large[0]['items']:,} vectors (100 trees), "
    text += f"{large[0]['curve']['queries']} real edited queries, recall@10 against exact search:\n\n"
    text += table(["items", "dims", "search_k", "recall@10", "ms/query"], curve_rows)
    for found in large:
        text += (
            f"\n\nreduce {found['reduce']}: built in {found['build_s']} s; chosen for 0.98: search_k "
            f"{found['curve']['search_k']} (0 = exact); query p50 {found['p50_ms']:.2f} ms, p95 "
            f"{found['p95_ms']:.2f} ms; exact search {found['curve']['exact_ms']:.2f} ms."
        )
    return {"robustness": results, "robustness_100k": large}, text
