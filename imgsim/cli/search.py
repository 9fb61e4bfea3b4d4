"""``imgsim search`` (``python ann.py``): search the index with image files, draw its map, list its copies.

    imgsim search QUERY... [--k 5] [--json] [--plot OUT_DIR]
    imgsim search --map OUT.png          (imgsim map OUT.png: a t-SNE map of the indexed collection)
    imgsim search --duplicates [--threshold D] [--json]   (imgsim duplicates: groups of copies)

A QUERY is an image file or a folder of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from imgsim import config
from imgsim.images import imaging
from imgsim.index import matching, store
from imgsim.measure import plots
from imgsim.models import embedders, runtimes, tta
from imgsim.search import likeness, verification
from imgsim.search.ann import find_duplicates, open_index


def _query_files(queries: list[str]) -> list[Path]:
    files: list[Path] = []
    for query_path in map(Path, queries):
        if query_path.is_dir():
            files.extend(sorted(p for p in query_path.rglob("*") if p.is_file() and imaging.is_image_path(p)))
        else:
            files.append(query_path)
    return files


def _print_duplicates(cfg: config.Config, threshold: float | None, as_json: bool) -> int:
    try:
        index = open_index(cfg.index_dir)
        limit, groups = find_duplicates(index, threshold, bar=True)
    except (store.IndexMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps({"threshold": limit, "groups": [asdict(group) for group in groups]}, indent=1))
        return 0
    copies = sum(len(group.members) - 1 for group in groups)
    print(
        f"{len(groups)} groups of copies ({copies} copies beyond the one to keep), distance <= {limit:.4f}:"
    )
    for group in groups:
        print(f"- {group.kind}: {group.reason}")
        for member in group.members:
            mark = "keep" if member.id == group.keep else "    "
            what = f"  ({member.what})" if member.what else ""
            print(f"  {mark} {member.id:>7}  {member.pixels:>10,} px  {member.path}{what}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Find the indexed images most similar to each QUERY image.",
        epilog="Example: imgsim search photo.jpg --k 5 --plot results/",
    )
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="image file or folder of images")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--plot", metavar="OUT_DIR", help="write one PNG per query with its results")
    parser.add_argument("--map", metavar="OUT.png", help="draw a t-SNE map of the whole indexed collection")
    parser.add_argument("--duplicates", action="store_true", help="list groups of copies in the collection")
    parser.add_argument(
        "--threshold", type=float, metavar="D",
        help="with --duplicates: distance under which photos are copies (default: the index's own)",
    )  # fmt: skip
    config.add_flags(parser, "index_dir", "k", "search_k", "tta", "runtime", "precision", "model_cache")
    args, cfg = config.parse_args(parser, argv)
    if not args.queries and not args.map and not args.duplicates:
        parser.error("give QUERY images, --map OUT.png or --duplicates")
    if args.threshold is not None and not args.duplicates:
        parser.error("--threshold goes with --duplicates")
    config.quiet_tensorflow()
    if args.duplicates:
        return _print_duplicates(cfg, args.threshold, args.json)
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
        embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
    except Exception as error:  # missing index or model: one clear line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    thresholds = matching.Thresholds.from_dict(index.manifest.thresholds)
    files = _query_files(args.queries)
    if not files:
        print("error: no query images found", file=sys.stderr)
        return 2
    if args.plot:
        Path(args.plot).mkdir(parents=True, exist_ok=True)
    answers, failures = [], 0
    for query_file in files:
        try:
            image = imaging.open_rgb(query_file, cfg.max_image_pixels, embedder.decode_side)
        except imaging.UnreadableImage as error:
            failures += 1
            answers.append({"query": str(query_file), "error": str(error)})
            if not args.json:
                print(f"{query_file}: cannot read: {error}", file=sys.stderr)
            continue
        vectors = embedder.embed_images(tta.variants(image, cfg.tta))
        wanted = max(cfg.k, verification.RERANK)  # as the service: the original first, then the rest
        found_all = [index.search(vector, wanted, cfg.search_k) for vector in vectors]
        found = tta.best_orientation(found_all)
        chosen = next(v for v, hits in zip(vectors, found_all, strict=True) if hits is found)
        extra = verification.by_hash(index, image, index.to_index_space(chosen[None, :])[0])
        hits = verification.verified_first(index, image, list(found), cfg.k, extra=extra)
        hits = likeness.with_likeness(index, [chosen], hits)
        word = lambda hit: matching.word(hit.likeness, verification.is_copy(hit), thresholds)  # noqa: E731
        results = [asdict(hit) | {"match": word(hit)} for hit in hits]
        answers.append({"query": str(query_file), "results": results})
        if not args.json:
            print(f"{query_file}:")
            for rank, (hit, result) in enumerate(zip(hits, results, strict=True), 1):
                print(f"  {rank:>3}. {hit.distance:.4f}  {result['match'] or '':<9}  {hit.path}")
        if args.plot:
            out = Path(args.plot) / f"{query_file.stem}_results.png"
            plots.plot_results(query_file, image, hits, index.collection_root, out)
            if not args.json:
                print(f"  plot: {out}")
    if args.json:
        print(json.dumps(answers, indent=1))
    return 1 if failures == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
