"""``imgsim search`` (``python ann.py``): search the index with image files, draw its map, list its copies.

    imgsim search QUERY... [--k 5] [--json] [--plot OUT_DIR]
    imgsim search --map OUT.png          (imgsim map OUT.png: a t-SNE map of the indexed collection)
    imgsim search --duplicates [--threshold D] [--state S] [--json]   (imgsim duplicates, cli/duplicates.py)

A QUERY is an image file or a folder of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from imgsim import config
from imgsim.cli import duplicates
from imgsim.images import imaging
from imgsim.index import store
from imgsim.index.depth import from_search_k
from imgsim.live import live
from imgsim.measure import plots
from imgsim.models import embedders, runtimes
from imgsim.query import pipeline
from imgsim.search.annoy_index import Hit, open_index


def _query_files(queries: list[str]) -> list[Path]:
    files: list[Path] = []
    for query_path in map(Path, queries):
        if query_path.is_dir():
            files.extend(sorted(p for p in query_path.rglob("*") if p.is_file() and imaging.is_image_path(p)))
        else:
            files.append(query_path)
    return files


def _print_hits(query_file: Path, hits: list[Hit]) -> None:
    print(f"{query_file}:")
    for rank, hit in enumerate(hits, 1):
        print(f"  {rank:>3}. {hit.distance:.4f}  {hit.match or '':<10}  {hit.path}")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if "--duplicates" in given:  # ann.py --duplicates: the duplicates command, with all its flags
        return duplicates.main([a for a in given if a != "--duplicates"], prog)
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Find the indexed images most similar to each QUERY image.",
        epilog="Example: imgsim search photo.jpg --k 5 --plot results/",
    )
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="image file or folder of images")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--plot", metavar="OUT_DIR", help="write one PNG per query with its results")
    parser.add_argument("--map", metavar="OUT.png", help="draw a t-SNE map of the whole indexed collection")
    parser.add_argument(
        "--duplicates",
        action="store_true",
        help="list groups of copies (imgsim duplicates --help: its flags)",
    )
    config.add_flags(
        parser, "index_dir", "k", "search_k", "tta", "runtime", "precision", "model_cache", "live_url"
    )
    args, cfg = config.parse_args(parser, argv)
    if not args.queries and not args.map:
        parser.error("give QUERY images, --map OUT.png or --duplicates")
    if args.map:
        try:
            plots.draw_map(open_index(cfg.index_dir), Path(args.map))
        except (store.IndexMissing, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"map: {args.map}", file=sys.stderr if args.json else sys.stdout)
        if not args.queries:
            return 0
    try:
        index = open_index(cfg.index_dir)
        view = live.LiveLayer(live.open_store(cfg.index_dir, cfg.live_url)).view(index)
        embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
    except Exception as error:  # missing index, model or live store: one clear line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    depth = from_search_k(cfg.search_k)
    files = _query_files(args.queries)
    if not files:
        print("error: no query images found", file=sys.stderr)
        return 2
    if args.plot:
        Path(args.plot).mkdir(parents=True, exist_ok=True)
    answers: list[dict[str, Any]] = []
    failures = 0
    for query_file in files:
        try:
            image = imaging.open_rgb(query_file, cfg.max_image_pixels, embedder.decode_side)
        except imaging.UnreadableImage as error:
            failures += 1
            answers.append({"query": str(query_file), "error": str(error)})
            if not args.json:
                print(f"{query_file}: cannot read: {error}", file=sys.stderr)
            continue
        found = pipeline.search_image(index, view, image, embedder.embed_images, cfg.k, depth, cfg.tta)
        answers.append({"query": str(query_file), "results": [hit.to_dict() for hit in found.hits]})
        if not args.json:
            _print_hits(query_file, found.hits)
        if args.plot:
            out = Path(args.plot) / f"{query_file.stem}_results.png"
            plots.plot_results(query_file, image, found.hits, index.collection_root, out)
            if not args.json:
                print(f"  plot: {out}")
    if args.json:
        print(json.dumps(answers, indent=1))
    return 1 if failures == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
