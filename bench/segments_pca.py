"""Section 21 (segments_pca): the nearest-neighbour stage at a million vectors reduced to 256-d.

Section 13's stand-ins at full size (1280-d) cost a query about 18 ms over four segments at 1M; a
query's cost is the vectors it reads, so ``--reduce pca`` (256-d) should cut it by about 5. The same
stand-ins and queries (bench/segments.py), with the real index built with ``--reduce pca --dims
256`` and everything else the defaults: the first build's stand-in segments (time, peak memory),
then query p50 and recall@10 against exact search over every segment, and one segment alone.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import copy_subset, flower_files, table
from bench.segments import REAL, SETTINGS_FILE, in_child, work_config
from imgsim.index import store
from imgsim.indexing import indexer

REDUCED = {"reduce": "pca", "dims": 256}


def bench_segments_pca(quick: bool) -> tuple[dict, str]:
    count = 100_000 if quick else 1_000_000
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-segments-pca-"))
    try:
        (workdir / SETTINGS_FILE).write_text(json.dumps(REDUCED))
        cfg = work_config(workdir)
        photos = copy_subset(flower_files(None)[:REAL], workdir / "photos")
        indexer.build_index(photos, cfg, progress=False, log=lambda _: None)
        standin = in_child("standin", str(workdir), str(count))
        refs = store.read_segments(store.current_version(cfg.index_dir))
        queries = in_child("query", str(workdir), max(refs, key=lambda ref: ref.live).name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"  segments_pca {count:,} done", file=sys.stderr, flush=True)
    row = [
        f"{count:,}",
        queries["segments"],
        standin["seconds"],
        standin["peak_mb"],
        queries["recall"],
        queries["p50_ms"],
        queries["p95_ms"],
        f"{queries['one_segment_items']:,}",
        queries["one_segment_p50_ms"],
        queries["p50_ms"] / queries["one_segment_p50_ms"],
    ]
    headers = [
        "vectors (PCA-256)",
        "segments",
        "stand-ins written s",
        "peak MB",
        "recall@10",
        "query p50 ms",
        "p95 ms",
        "one segment of",
        "its p50 ms",
        "p50 / one segment's",
    ]
    return {"segments_pca": {"items": count, "standin": standin, "queries": queries}}, table(headers, [row])
