"""Section 21 (segments_pca): the nearest-neighbour stage at a million vectors reduced to 256-d.

Section 13's stand-ins at full size (1280-d) cost a query about 18 ms over four segments at 1M; a
query's cost is the vectors it reads, so ``--reduce pca`` (256-d) should cut it by about 5. The same
stand-ins and queries (bench/segments.py), with the real index built with ``--reduce pca --dims
256`` and everything else the defaults: the first build's stand-in segments (time, peak memory),
then 1,000 other flowers added through the service and compacted as section 13 does (published,
and with its copies checked), then query p50 and recall@10 against exact search over every
segment, and one segment alone.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import table
from bench.segments import DELTA, SETTINGS_FILE, fill_and_compact, in_child

REDUCED = {"reduce": "pca", "dims": 256}


def bench_segments_pca(quick: bool) -> tuple[dict, str]:
    count = 100_000 if quick else 1_000_000
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-segments-pca-"))
    try:
        (workdir / SETTINGS_FILE).write_text(json.dumps(REDUCED))
        filled = fill_and_compact(count, workdir)
        standin, compaction = filled["standin"], filled["compaction"]
        queries = in_child("query", str(workdir), filled["largest"])
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
        compaction["published_s"],
        compaction["compaction_s"],
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
        f"compaction of {DELTA:,} published s",
        "with its copies checked s",
    ]
    found = {"items": count, "standin": standin, "compaction": compaction, "queries": queries}
    return {"segments_pca": found}, table(headers, [row])
