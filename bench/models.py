"""Benchmark sections about the network: embedding speed (1) and retrieval quality (3)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, copy_subset, count_flops, cpu_peak_gflops, flower_files, table
from imgsim import config
from imgsim.images import imaging
from imgsim.index import store
from imgsim.indexing import indexer
from imgsim.measure import scoring
from imgsim.models import embedders, reducers
from imgsim.search import annoy_index


def embed_child(model: str, count: int) -> dict:
    """Run in a fresh process so that its peak memory is the model's own."""
    weights = None if model == "inception_v3" else "imagenet"
    embedder = embedders.load_embedder(model, weights)
    files = flower_files(None)[:: max(1, 4317 // count)][:count]
    started = time.perf_counter()
    pixels = np.stack([embedder.prepare(imaging.open_rgb(path)) for path in files])
    decode_ms = 1000 * (time.perf_counter() - started) / len(files)
    flops = count_flops(embedder.model, embedder.input_size)
    results = []
    for batch in (1, 8, 32):
        embedder.embed(pixels[:batch])  # warm-up: graph tracing, allocations
        use = pixels[: max(batch, (count // batch) * batch if batch > 1 else min(count, 24))]
        began = time.perf_counter()
        for start in range(0, len(use), batch):
            embedder.embed(use[start : start + batch])
        seconds = time.perf_counter() - began
        rate = len(use) / seconds
        results.append(
            {
                "batch": batch,
                "images": len(use),
                "images_per_s": rate,
                "net_ms_per_image": 1000 / rate,
                "gflops_per_s": flops * rate / 1e9,
            }
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": embedder.name,
        "input": embedder.input_size,
        "dim": embedder.dim,
        "gflops_per_image": flops / 1e9,
        "decode_ms_per_image": decode_ms,
        "peak_rss_mb": peak,
        "runs": results,
    }


def bench_embed(quick: bool) -> tuple[dict, str]:
    peak, peak_note = cpu_peak_gflops()
    rows, data = [], []
    for model in ("inception_v3", str(config.SHARED_MODEL)):
        count = 32 if quick else 128
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), "--child-embed", model, str(count)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        data.append(result)
        for run in result["runs"]:
            share = result["decode_ms_per_image"] / (result["decode_ms_per_image"] + run["net_ms_per_image"])
            name = result["model"] + (" (random weights)" if model == "inception_v3" else "")
            rows.append(
                [
                    name,
                    run["batch"],
                    run["images_per_s"],
                    run["net_ms_per_image"],
                    result["decode_ms_per_image"],
                    f"{100 * share:.0f}%",
                    run["gflops_per_s"],
                    f"{100 * run['gflops_per_s'] / peak:.1f}%",
                    result["peak_rss_mb"],
                ]
            )
    text = table(
        [
            "model",
            "batch",
            "images/s",
            "network ms/img",
            "decode ms/img",
            "decode share",
            "GFLOP/s",
            "of peak",
            "peak RSS MB",
        ],
        rows,
    )
    flops = ", ".join(f"{d['model']} {d['gflops_per_image']:.2f} GFLOP/image" for d in data)
    text += f"\n\nPeak estimate {peak:.0f} GFLOP/s = {peak_note}. Network cost: {flops}."
    text += " Decoding is one thread over 128x128 JPEGs, resize included; peak RSS covers all batch sizes."
    return {"models": data, "cpu_peak_gflops": peak, "cpu": peak_note}, text


def bench_quality(quick: bool) -> tuple[dict, str]:
    per_class = 100 if quick else None
    rows, data = [], []
    with tempfile.TemporaryDirectory(prefix="imgsim-quality-") as tmp:
        photos = copy_subset(flower_files(per_class), Path(tmp) / "flowers")
        cfg = config.Config(index_dir=Path(tmp) / "index", model=str(config.SHARED_MODEL), trees=100)
        for reduce in ("none", "pca", "autoencoder"):
            began = time.perf_counter()
            indexer.build_index(
                photos, cfg.replace(reduce=reduce, dims=256), progress=False, log=lambda _: None
            )
            seconds = time.perf_counter() - began
            index = annoy_index.open_index(cfg.index_dir)
            scores = scoring.evaluate_index(index)
            full = store.read_vectors(index.version)
            reduced = index.stored_vectors()
            kept = 1.0 if reduce == "none" else reducers.neighbour_preservation(full, reduced)
            record = {
                "reduce": reduce,
                "dims": index.manifest.dims,
                "build_s": seconds,
                "top10_kept": kept,
                **scores,
            }
            data.append(record)
            rows.append(
                [
                    reduce,
                    record["dims"],
                    scores["p@1"],
                    scores["p@5"],
                    scores["p@10"],
                    scores["map"],
                    scores["recall@10"],
                    kept,
                    seconds,
                ]
            )
    text = table(
        ["reduce", "dims", "P@1", "P@5", "P@10", "mAP", "Annoy recall@10", "exact top-10 kept", "build s"],
        rows,
    )
    count = 500 if quick else 4317
    text += (
        f"\n\nflowers5, {count} images, EfficientNet-Lite0 (1280-d), leave-one-out, 100 trees. "
        "The first build includes embedding every image; the others reuse the vectors."
    )
    return {"quality": data}, text
