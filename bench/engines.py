"""Benchmark section 6: embedding throughput in-process vs on a local Ray cluster, side by side."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import config
import img2vec
from bench.common import flower_files, link_subset, table


def _build(photos: Path, cfg: config.Config) -> tuple[float, float, int]:
    """(wall seconds of the whole build, seconds of the embedding, images embedded)."""
    began = time.perf_counter()
    report = img2vec.build_index(photos, cfg, progress=False, log=lambda _: None)
    return time.perf_counter() - began, report.embed_seconds, report.embedded


def bench_engine(quick: bool) -> tuple[dict, str]:
    """The same photos embedded from scratch by each engine, one after the other in one run."""
    per_class = 40 if quick else 200
    cores = os.cpu_count() or 1
    rows, data = [], {}
    with tempfile.TemporaryDirectory(prefix="imgsim-engine-") as tmp:
        photos = link_subset(flower_files(per_class), Path(tmp) / "flowers")
        base = config.Config(model=str(config.SHARED_MODEL), trees=10)
        engines = [
            ("in-process", base),
            (f"Ray, {cores} actors x 1 CPU (local)", base.replace(engine="ray", ray_actors=cores)),
        ]
        for name, cfg in engines:
            wall, embed_s, count = _build(photos, cfg.replace(index_dir=Path(tmp) / name.split(",")[0]))
            data[name] = {
                "images": count,
                "wall_s": wall,
                "embed_s": embed_s,
                "images_per_s": count / embed_s,
            }
            rows.append([name, count, f"{embed_s:.1f}", f"{count / embed_s:.1f}", f"{wall:.1f}"])
    local, on_ray = data["in-process"], next(v for k, v in data.items() if k != "in-process")
    overhead_ms = 1000 * (on_ray["embed_s"] - local["embed_s"]) / local["images"]
    data["ray_overhead_ms_per_image"] = overhead_ms
    text = table(["engine", "images", "embed s", "images/s", "whole build s"], rows)
    text += (
        f"\n\nEfficientNet-Lite0 on {local['images']} flowers5 photos (128 px JPEGs), from scratch, "
        f"{cores} cores. Ray's embed time includes starting the local cluster and loading the model "
        f"in each actor; the difference per image is {overhead_ms:+.1f} ms."
    )
    return data, text
