"""``imgsim index`` (``python img2vec.py``): turn a collection of images into vectors and (re)build the index.

    imgsim index DATASET [--model inception_v3] [--reduce none|autoencoder|pca] [--index-dir rsc_files]

DATASET is a folder (walked recursively) or a glob such as ``'photos/**/*.jpg'``. Rerunning it is how
the index is rebuilt: only new or changed files are embedded, vectors of deleted files are dropped,
and an interrupted run resumes where it stopped. The new version is switched in atomically.
The build itself is indexing/indexer.py; this is its command line, and --add / --remove (``imgsim add``,
``imgsim remove``) for the live layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imgsim import config
from imgsim.index import store
from imgsim.indexing import collection
from imgsim.indexing.indexer import BuildReport, build_index
from imgsim.live import live
from imgsim.models import embedders
from imgsim.serve import service


def _log(message: str) -> None:
    print(message, file=sys.stderr)  # progress and news go to stderr; results to stdout


SETTINGS = [
    *config.BUILD_FLAGS,
    "decode_workers",
    "checkpoint_every",
    "metric",
    "ae_epochs",
    "ae_train_images",
    "keep_versions",
    "live_url",
    "engine",
    "ray_address",
    "ray_actors",
    "ray_cpus_per_actor",
    "segment_items",
    "segments_per_tier",
]  # the settings this command takes as flags


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Embed every image under DATASET and (re)build the similarity index. "
        "Reruns embed only new or changed files.",
        epilog="Example: python img2vec.py ~/Pictures --reduce pca",
    )
    parser.add_argument("dataset", nargs="?", help="folder of images (recursive) or a quoted glob")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="index scikit-image's sample photos (copied to INDEX_DIR/sample_images) "
        "with the best model available here",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="re-embed every image and rewrite every segment, ignoring earlier runs",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="merge the index's segments into the fewest the size limit allows",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--add",
        nargs="+",
        metavar="FILE",
        help="add images to the running index (copied into the collection's uploads/)",
    )
    parser.add_argument("--remove", nargs="+", type=int, metavar="ID", help="remove items by id")
    parser.add_argument(
        "--retrain", action="store_true", help="with --model convae/simpleae: train the autoencoder again"
    )
    parser.add_argument(
        "--plot",
        metavar="OUT.png",
        help="with --model convae/simpleae: write a few images and their reconstructions",
    )
    config.add_flags(parser, *SETTINGS)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog)
    args, cfg = config.parse_args(parser, argv)
    if not args.dataset and not args.sample and not args.add and not args.remove:
        parser.error("give a DATASET folder or glob, --sample, --add FILE... or --remove ID...")
    if args.add or args.remove:
        return edit_live(cfg, args.add or [], args.remove or [])
    try:
        embedder, dataset = None, args.dataset
        if args.sample:
            dataset = collection.export_sample_images(Path(cfg.index_dir) / "sample_images")
            embedder = embedders.best_available(cfg, log=_log)
        report = build_index(
            dataset,
            cfg,
            embedder,
            progress=not args.no_progress,
            full=args.full,
            retrain=args.retrain,
            plot=Path(args.plot) if args.plot else None,
            merge=args.merge,
        )
    except (embedders.WeightsUnavailable, store.BuildInProgress, OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_report(report)
    return 0


def _print_report(report: BuildReport) -> None:
    if report.skipped:
        print(f"Skipped {len(report.skipped)} unreadable file(s):", file=sys.stderr)
        for path, reason in report.skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
    if not report.up_to_date:
        print(
            f"Indexed {report.items} images into {report.version} in {report.seconds:.1f} s "
            f"(embedded {embedded_rate(report)}, reused {report.reused}, "
            f"removed {report.removed}, skipped {len(report.skipped)})."
        )


def embedded_rate(report: BuildReport) -> str:
    """How many were embedded, and how fast where the run timed it: the photos embedded while
    choosing the precision were timed with the precisions they were compared at."""
    timed = report.embedded - report.measured
    rate = f"{timed} at {timed / report.embed_seconds:.1f} img/s" if timed and report.embed_seconds else ""
    if not report.measured:
        return rate or f"{report.embedded}"
    measuring = f"{report.measured} while choosing the precision"
    return f"{report.embedded}: {rate}, {measuring}" if rate else f"{report.embedded}, {measuring}"


def edit_live(cfg: config.Config, files: list[str], ids: list[int]) -> int:
    """--add / --remove: the same durable changes as POST and DELETE /images, through the same code."""
    try:
        svc = service.assemble(cfg)
    except live.StoreUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if svc.holder.get() is None:
        print(f"error: {svc.holder.load_error}", file=sys.stderr)
        return 2
    failures = 0
    for name in files:
        try:
            data = Path(name).read_bytes()
            added = svc.ingest.add(data, svc.searching.decode(data), {"original_name": Path(name).name})
            print(f"added {name} as id {added.id} ({added.path})")
        except (OSError, service.ServiceError) as error:
            failures += 1
            print(f"cannot add {name}: {error}", file=sys.stderr)
    for item_id in ids:
        try:
            print(f"removed {item_id} ({svc.ingest.remove(item_id)})")
        except service.ServiceError as error:
            failures += 1
            print(f"cannot remove {item_id}: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
