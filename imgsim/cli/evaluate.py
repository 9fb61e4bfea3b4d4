"""``imgsim evaluate`` (``python evaluate.py``): retrieval quality on a folder of class sub-folders,
or on a folder with Holidays-style groups of the same scene.

imgsim evaluate DATASET [--model ...] [--reduce none|pca|autoencoder] [--trees 100] [--json]
imgsim evaluate DATASET --reference   # also keep the model's reference for the match labels
imgsim evaluate DATASET --groups GT.json   # the Holidays mAP ("holidays_map"), measure/scenes.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from imgsim import config
from imgsim.index import store
from imgsim.index.depth import from_search_k
from imgsim.indexing import indexer
from imgsim.measure import scenes
from imgsim.measure.scoring import class_folders, evaluate_edits, evaluate_index
from imgsim.models import embedders, reference, runtimes
from imgsim.search import annoy_index

SETTINGS = [*config.BUILD_FLAGS, "search_k", "tta"]  # the settings this command takes as flags


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Leave-one-out retrieval quality on a folder of class sub-folders.",
        epilog="Example: imgsim evaluate ../shared/datasets/flowers5 --model "
        "../shared/models/efficientnet_lite0_imagenet.keras --reduce pca",
    )
    parser.add_argument("dataset", help="folder whose sub-folders are the classes (or, with --groups, any)")
    parser.add_argument(
        "--groups",
        metavar="GT.json",
        help="score scene retrieval instead: a JSON object of query name -> the names of its relevant "
        "photos (Holidays' gt.json); prints the Holidays mAP",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--edited",
        type=int,
        default=50,
        metavar="N",
        help="search with every edit of N images of the collection; 0 = skip (default %(default)s)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="measure the model's match-label reference on these labelled photos and keep it for every "
        "later build with this model (models/reference.py)",
    )
    config.add_flags(parser, *SETTINGS)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog)
    args, cfg = config.parse_args(parser, argv)
    dataset = Path(args.dataset)
    if not dataset.is_dir():
        parser.error(f"{dataset} is not a folder")
    groups = None
    if args.groups:
        try:
            groups = scenes.read_groups(Path(args.groups))
        except ValueError as error:
            parser.error(str(error))
    classes = class_folders(dataset)
    if groups is None and len(classes) < 2:  # refuse before embedding anything, instead of printing zeros
        parser.error(f"{dataset} needs at least two class sub-folders of images, found {len(classes)}")
    eval_cfg = cfg.replace(index_dir=Path(cfg.index_dir) / "eval" / dataset.resolve().name)
    try:  # Keras prints training progress on stdout: keep stdout for the answer
        with contextlib.redirect_stdout(sys.stderr):
            indexer.build_index(dataset, eval_cfg, progress=not args.no_progress)
            index = annoy_index.open_index(eval_cfg.index_dir)
            depth = from_search_k(cfg.search_k)
            scores: dict[str, Any] = (
                evaluate_index(index, depth=depth)
                if groups is None
                else {"items": len(index.items)} | scenes.evaluate_groups(index, groups, depth)
            )
            if args.edited > 0:
                embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
                scores |= evaluate_edits(
                    index, embedder, args.edited, from_search_k(cfg.search_k), cfg.tta, verify=True
                )
            if args.reference:
                labels = [item.path.split("/", 1)[0] for item in index.items]
                measured = reference.measure(
                    index.manifest.model_key, store.read_vectors(index.version), labels, dataset.name
                )
                kept = reference.save(measured, runtimes.cache_root(cfg.model_cache))
                scores["reference"] = measured.to_dict() | {"file": str(kept)}
    except (embedders.WeightsUnavailable, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(scores))
        return 0
    if groups is not None:
        print(
            f"\n{dataset}: {scores['items']} images, {scores['queries']} queries, model {cfg.model}: "
            f"Holidays mAP {scores['holidays_map']:.3f}, P@1 {scores['p@1']:.3f}; labelled same scene: "
            f"{scores['same_scene_relevant']} of the query's group, {scores['same_scene_other']} others"
        )
        if "edits" in scores:
            _print_edits(cfg, scores, args.edited)
        return 0
    _print_scores(dataset, cfg, scores, args.edited)
    return 0


def _print_scores(dataset: Path, cfg: config.Config, scores: dict[str, Any], edited: int) -> None:
    print(
        f"\n{dataset}: {scores['items']} images, model {cfg.model} on {cfg.runtime}, "
        f"reduce {cfg.reduce}, {cfg.trees} trees"
    )
    print("  P@1     P@5     P@10    mAP     recall@10  query ms")
    print(
        f"  {scores['p@1']:.3f}   {scores['p@5']:.3f}   {scores['p@10']:.3f}   {scores['map']:.3f}   "
        f"{scores['recall@10']:.3f}      {scores['query_ms']:.3f}"
    )
    if "edits" in scores:
        _print_edits(cfg, scores, edited)
    if "reference" in scores:
        stated = dict(scores["reference"])
        print(f"\nReference for {stated['model']} kept in {stated.pop('file')}:")
        print(f"  {reference.describe(reference.Reference(**stated))}")


def _print_edits(cfg: config.Config, scores: dict[str, Any], edited: int) -> None:
    print(
        f"\nEdited copies of {edited} images searched as uploads (tta {cfg.tta}): recall@10 against "
        f"exact search {scores['edited_recall@10']:.3f}, {scores['edited_query_ms']:.2f} ms a search"
    )
    print("  edit            rank 1   top 10")
    for name, found in scores["edits"].items():
        print(f"  {name:<15} {found['rank1']:.3f}    {found['top10']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
