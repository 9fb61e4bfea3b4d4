"""``imgsim duplicates`` (``python ann.py --duplicates``): list groups of copies, decide about them.

    imgsim duplicates [--threshold D] [--state open|resolved|all] [--json]
    imgsim duplicates --decide DECISION ID ID...   (keep_all, not_copies, remove_others, trash_others)
    imgsim duplicates --undo DECISION_ID

A decision is the same as ``POST /duplicates/decisions`` (the first id is the copy kept) and goes
through the same code; it stays made through rebuilds and renames.
"""

from __future__ import annotations

import argparse
import json
import sys

from imgsim import config
from imgsim.duplicates import decisions, keeper
from imgsim.duplicates.finding import STATES, find_duplicates
from imgsim.duplicates.grouping import Group
from imgsim.index import store
from imgsim.live import live
from imgsim.search.annoy_index import open_index
from imgsim.serve import service


def _print_groups(groups: list[Group], limit: float, state: str) -> None:
    shots = sum(group.kind == "similar" for group in groups)
    copies = sum(len(group.members) - 1 for group in groups if group.kind != "similar")
    print(
        f"{len(groups) - shots} {state} groups of copies ({copies} copies beyond the one to keep) "
        f"and {shots} of similar shots, distance <= {limit:.4f}:"
    )
    for group in groups:
        decided = f" [decision {group.decision.id}]" if group.decision is not None else ""
        print(f"- {group.kind}: {group.reason}{decided}")
        for member in group.members:
            mark = "keep" if member.id == group.keep else "    "
            said = group.why_kept if member.id == group.keep else member.what
            what = f"  ({said})" if said else ""
            print(f"  {mark} {member.id:>7}  {member.pixels:>10,} px  {member.path}{what}")


def list_groups(cfg: config.Config, threshold: float | None, state: str, as_json: bool) -> int:
    try:
        index = open_index(cfg.index_dir)
        live_store = live.open_store(cfg.index_dir, cfg.live_url)
        try:
            made, deleted = live_store.decisions(), set(live_store.read().deletions)
        finally:
            live_store.close()
        limit, groups = find_duplicates(index, threshold, deleted, made, state, keeper.of(cfg))
    except (store.IndexMissing, live.StoreUnavailable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if as_json:
        body = {"threshold": limit, "state": state, "groups": [group.to_dict() for group in groups]}
        print(json.dumps(body, indent=1))
    else:
        _print_groups(groups, limit, state)
    return 0


def decide(cfg: config.Config, decide: list[str] | None, undo: int | None, as_json: bool) -> int:
    """--decide / --undo: through the service's own code, as POST and DELETE /duplicates/decisions."""
    try:
        svc = service.assemble(cfg)
    except live.StoreUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if svc.holder.get() is None:
            print(f"error: {svc.holder.load_error}", file=sys.stderr)
            return 2
        if decide is not None:
            kind, ids = decide[0], [int(i) for i in decide[1:]]
            made = svc.deciding.decide(kind, ids)
            said = f"decision {made.id}: {kind} for {', '.join(map(str, ids))}"
        else:
            assert undo is not None
            made = svc.deciding.undo(undo)
            said = f"undid decision {made.id} ({made.kind})"
    except service.ServiceError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        svc.close()
    print(json.dumps(made.to_dict(), indent=1) if as_json else said)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="List the groups of copies in the index, and decide about them.",
        epilog="Example: imgsim duplicates --decide trash_others 17 4 9   (17 is kept)",
    )
    parser.add_argument("--threshold", type=float, metavar="D", help="distance under which photos are copies")
    parser.add_argument(
        "--state", choices=STATES, default="open", help="which groups to list (default: open)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--decide",
        nargs="+",
        metavar="DECISION ID",
        help=f"decide about items: DECISION is one of {', '.join(decisions.KINDS)}; the first ID is kept",
    )
    parser.add_argument("--undo", type=int, metavar="DECISION_ID", help="take a decision back")
    config.add_flags(parser, "index_dir", "keeper_rules", "runtime", "precision", "model_cache", "live_url")
    args, cfg = config.parse_args(parser, argv)
    if args.decide is not None:
        if args.decide[0] not in decisions.KINDS or len(args.decide) < 3:
            parser.error(f"--decide takes a decision ({', '.join(decisions.KINDS)}) and two ids or more")
        if not all(i.isascii() and i.isdigit() for i in args.decide[1:]):
            parser.error("--decide: after the decision, only ids")
    if args.decide is not None or args.undo is not None:
        if args.decide is not None and args.undo is not None:
            parser.error("give --decide or --undo, not both")
        return decide(cfg, args.decide, args.undo, args.json)
    return list_groups(cfg, args.threshold, args.state, args.json)


if __name__ == "__main__":
    sys.exit(main())
