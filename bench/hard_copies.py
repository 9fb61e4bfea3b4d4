"""Harder copies (issue 36): mirrored, recoloured, half-cropped, captioned, watermarked, and
screenshots inside one viewer's window, against imagededup's PHash, in one run; and bursts
(measure/bursts.py), which must be found as similar shots and never as copies.

    .venv/bin/python -m bench.hard_copies

flowers5's distinct photos with 20 copies of each kind of measure/hard_copies.py, indexed with the
defaults and EfficientNet-Lite0; the pairs of ``imgsim duplicates``' groups and of imagededup's
PHash (its default 10 bits; ``pip install --no-deps imagededup==0.3.3.post2``) scored against the
planted pairs, the source's own reviewed copies counted right. Prints a table; ``--json`` one line.
"""

from __future__ import annotations

import argparse
import json

from bench.common import table
from bench.planted import plant_and_find, reviewed_same_pictures
from imgsim.measure import hard_copies, planted


def run(per_kind: int = 20, burst_count: int = 20) -> dict:
    found = plant_and_find(10_000, per_kind, hard_copies.KINDS, burst_count=burst_count)
    same = reviewed_same_pictures()
    theirs = found.theirs or set()
    apart = found.bursts & found.shots - found.ours
    return {
        "imgsim": planted.score(found.ours, found.truth, same)
        | {"build_s": round(found.build_s, 1), "bursts_apart": len(apart) / max(1, len(found.bursts))}
        | {"bursts_as_copies": len(found.bursts & found.ours)},
        "imagededup_phash": planted.score(theirs, found.truth, same)
        | {"seconds": round(found.their_s, 1), "bursts_apart": 0.0}
        | {"bursts_as_copies": len(found.bursts & theirs)},
        "largest_group": found.largest_group,
        "originals_kept": planted.originals_kept(found.truth, found.kept),
        "copies_line": next((line for line in found.said if line.startswith("Copies:")), ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args()
    found = run()
    if args.json:
        print(json.dumps(found))
        return
    kinds = list(hard_copies.KINDS)
    rows = [
        [name, s["pairs"], len(s["wrong"]), f"{s['precision']:.3f}", f"{s['recall']:.3f}"]
        + [f"{s['per_kind'][kind]:.2f}" for kind in kinds]
        + [f"{s['bursts_apart']:.2f}", s["bursts_as_copies"]]
        for name, s in (
            ("imgsim (defaults)", found["imgsim"]),
            ("imagededup PHash", found["imagededup_phash"]),
        )
    ]
    headers = ["method", "pairs", "wrong", "precision", "recall", *kinds, "bursts apart", "bursts as copies"]
    print(table(headers, rows))
    print(f"\nlargest group: {found['largest_group']} photos; {found['copies_line']}")
    kept = found["originals_kept"]
    print("\nthe original kept (groups holding a planted copy and its original, default keeper rules):\n")
    counts = [f"{right} / {groups}" for right, groups in kept.values()]
    print(table(["kind", *kept], [["kept / groups", *counts]]))
    for pair in found["imgsim"]["wrong"][:15]:
        print("  wrong:", " = ".join(pair))


if __name__ == "__main__":
    main()
