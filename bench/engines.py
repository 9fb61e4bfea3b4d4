"""Benchmark section 6: embedding throughput in-process vs on a local Ray cluster, side by side."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from bench.common import copy_subset, flower_files, table
from imgsim import config
from imgsim.indexing import indexer
from imgsim.live import live


def _embed(photos: Path, cfg: config.Config) -> tuple[float, float, int, float]:
    """(wall seconds of planning and embedding, of the embedding, images embedded, seconds until
    the first vectors came back): a build's first two steps, without writing the version."""

    def quiet(_: str) -> None:
        pass

    began = time.perf_counter()
    with contextlib.closing(live.open_store(cfg.index_dir)) as live_store:
        plan = indexer.plan_build(photos, cfg, live_store, indexer.BuildOptions(progress=False, log=quiet))
        result = indexer.embed(plan, progress=False, log=quiet)
    return time.perf_counter() - began, result.seconds, result.embedded, result.warmup_seconds


def bench_engine(quick: bool) -> tuple[dict, str]:
    """The same photos embedded from scratch by each engine, one after the other in one run."""
    per_class = 40 if quick else 200
    cores = os.cpu_count() or 1
    rows, data = [], {}
    with tempfile.TemporaryDirectory(prefix="imgsim-engine-") as tmp:
        photos = copy_subset(flower_files(per_class), Path(tmp) / "flowers")
        base = config.Config(model=str(config.SHARED_MODEL), trees=10)
        engines = [
            ("in-process", base),
            (f"Ray, {cores} actors x 1 CPU (local)", base.replace(engine="ray", ray_actors=cores)),
        ]
        for name, cfg in engines:
            wall, embed_s, count, warmup = _embed(photos, cfg.replace(index_dir=Path(tmp) / name[:10]))
            steady = count / max(embed_s - warmup, 1e-9)
            data[name] = {"images": count, "wall_s": wall, "embed_s": embed_s, "warmup_s": warmup}
            data[name] |= {"images_per_s": count / embed_s, "steady_images_per_s": steady}
            rows.append(
                [name, count, f"{embed_s:.1f}", f"{warmup:.1f}", f"{count / embed_s:.1f}", f"{steady:.1f}"]
            )
    local, on_ray = data["in-process"], next(v for k, v in data.items() if k != "in-process")
    overhead_ms = 1000 / on_ray["steady_images_per_s"] - 1000 / local["steady_images_per_s"]
    data["ray_overhead_ms_per_image"] = overhead_ms
    headers = ["engine", "images", "embed s", "until first vectors s", "images/s", "images/s after that"]
    text = table(headers, rows)
    text += (
        f"\n\nEfficientNet-Lite0 on {local['images']} flowers5 photos (128 px JPEGs), from scratch, "
        f"{cores} cores, one engine after the other in one run. Ray's time includes starting a local "
        f"cluster and loading the model in each actor (until the first vectors); after that, Ray costs "
        f"{overhead_ms:+.1f} ms per image against in-process."
    )
    return data, text
