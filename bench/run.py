"""Measure imgsim on this machine and print Markdown tables (also written as JSON).

    python bench/run.py [--quick] [--only SECTION,...] [--out FILE]

Sections (default: all):

1. embed:   images/s and peak memory of InceptionV3 (random weights: speed only) and the shared
            EfficientNet-Lite0 at batch sizes 1, 8, 32; decoding cost alone; decode vs network
            share; achieved GFLOP/s against an estimate of this CPU's peak.
2. annoy:   build time, file size, query latency and recall@10 against exact search, for
            synthetic clustered vectors; exact numpy search as the baseline.
3. quality: flowers5 leave-one-out P@1/P@10/mAP for full vectors vs autoencoder-256 vs PCA-256.
4. service: POST /search latency p50/p95/p99 and requests/s through gunicorn on loopback.
5. live:    search latency with a live delta of 0 / 1,000 / 10,000 items in front of Annoy; search
            by id, the time from POST /images to searchable and compaction time on the SQLite and
            the PostgreSQL live store side by side (a throwaway local PostgreSQL, where installed).
6. engine:  embedding images/s in-process vs on a local Ray cluster, the same photos, one run.
7. runtime: TensorFlow vs OpenVINO at batch 1/8/32 for InceptionV3 and EfficientNet-Lite0, as
            images/s and as a share of a float32 matrix multiply's GFLOP/s measured in the same
            process; a 4000x3000 JPEG decoded whole vs at reduced scale; img2vec.py end to end on
            camera-size JPEGs with the code of round 1, of this round's start and of now.
8. robust:  edited copies (re-encoded, resized, flipped, brightened, turned, bordered, cropped,
            gray; two strengths each) of flowers5 photos searched as uploads: rank 1 / top 10 of
            the original per edit and class P@1/P@10/mAP for each descriptor option (average
            pooling, + border trimming, + GeM, + centring, + query-side rotations); Annoy's recall
            curve on edited queries at 100,000 vectors and the query time at the chosen depth.
11. precision: f32 vs bf16 vs int8 (NNCF) on this CPU: matrix-multiply GFLOP/s, InceptionV3 and
            Lite0 images/s at batch 1/8/32, agreement with f32, flowers5 P@1/P@10/mAP and edited-copy
            rank-1, img2vec on 200 camera JPEGs, POST /search p50 / 8-client rate / worker RSS.
13. segments: at 100k and 1M vectors (stand-ins, plus real flowers): the first build's time and
            peak memory, a compaction of 1,000 real additions in a worker (time, memory), query p50
            over every segment vs one, recall@10 against exact search, worker RSS/PSS.
14. planted: flowers5 with 20 planted copies of each of 8 kinds: duplicate pair precision and
            recall of ann.py --duplicates beside imagededup's PHash (a peer, installed apart).
15. verify:  what verifying a search's candidates costs with every one checked in full and with
            the first look, side by side: edited copies' rank 1 per kind, verification ms for
            edited copies, held-out flowers and Holidays photos.
16. scenes:  Holidays mAP and flowers5 P@1/P@10/mAP as the service ranks, and edited copies' rank 1,
            with the shortlist's augmentation and without, side by side.
21. segments_pca: section 13's 1M stand-ins with --reduce pca (256-d): query p50 and recall@10 over
            every segment vs one, the stand-in segments' time and peak memory.

--quick (under 5 minutes) uses fewer images, sizes and seconds; the full run takes under 30.
Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import FLOWERS, ROOT, cpu_peak_gflops  # noqa: E402
from bench.engines import bench_engine  # noqa: E402
from bench.indexes import bench_annoy, bench_live  # noqa: E402
from bench.models import bench_embed, bench_quality, embed_child  # noqa: E402
from bench.planted import bench_planted  # noqa: E402
from bench.precisions import bench_precision  # noqa: E402
from bench.robustness import bench_robustness  # noqa: E402
from bench.runtimes import bench_runtime, runtime_child  # noqa: E402
from bench.scenes import bench_scenes  # noqa: E402
from bench.segments import bench_segments  # noqa: E402
from bench.segments import child as segments_child  # noqa: E402
from bench.segments_pca import bench_segments_pca  # noqa: E402
from bench.service import bench_service  # noqa: E402
from bench.verification_cost import bench_verification  # noqa: E402
from imgsim import config  # noqa: E402

SECTIONS = {
    "embed": bench_embed,
    "annoy": bench_annoy,
    "quality": bench_quality,
    "service": bench_service,
    "live": bench_live,
    "engine": bench_engine,
    "runtime": bench_runtime,
    "robust": bench_robustness,
    "precision": bench_precision,
    "segments": bench_segments,
    "planted": bench_planted,
    "verify": bench_verification,
    "scenes": bench_scenes,
    "segments_pca": bench_segments_pca,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark imgsim on this machine; prints Markdown tables.")
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 5 minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections (default: all)")
    parser.add_argument("--out", help="JSON file to write (default bench/results/<time>.json)")
    parser.add_argument("--child-embed", nargs=2, metavar=("MODEL", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-runtime", nargs=2, metavar=("MODEL", "ROUNDS"), help=argparse.SUPPRESS)
    parser.add_argument("--child-segments", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_segments:
        print(json.dumps(segments_child(args.child_segments)))
        return 0
    if args.child_embed:
        print(json.dumps(embed_child(args.child_embed[0], int(args.child_embed[1]))))
        return 0
    if args.child_runtime:
        print(json.dumps(runtime_child(args.child_runtime[0], int(args.child_runtime[1]))))
        return 0
    if not (config.SHARED_MODEL.is_file() and FLOWERS.is_dir()):
        print(
            f"error: the benchmark needs the shared model and photos in {config.SHARED_DIR}", file=sys.stderr
        )
        return 2
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    report = {
        "machine": {
            "cpu": cpu_peak_gflops()[1],
            "python": platform.python_version(),
            "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        },
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    began = time.perf_counter()
    print(
        f"# imgsim benchmark{' (quick)' if args.quick else ''}\n\nMachine: {report['machine']['cpu']}, "
        f"{report['machine']['memory_gb']:.0f} GiB\n"
    )
    for name in chosen:
        section_began = time.perf_counter()
        data, text = SECTIONS[name](args.quick)
        report[name] = data
        print(f"## {name} ({time.perf_counter() - section_began:.0f} s)\n\n{text}\n", flush=True)
    report["seconds"] = time.perf_counter() - began
    out = (
        Path(args.out) if args.out else ROOT / "bench" / "results" / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"Total {report['seconds']:.0f} s. JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
