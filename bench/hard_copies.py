"""Harder copies (issue 36): mirrored, recoloured, half-cropped, captioned, watermarked, and
screenshots inside one viewer's window, against imagededup's PHash, in one run.

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


def run(per_kind: int = 20) -> dict:
    found = plant_and_find(10_000, per_kind, hard_copies.KINDS)
    same = reviewed_same_pictures()
    return {
        "imgsim": planted.score(found.ours, found.truth, same) | {"build_s": round(found.build_s, 1)},
        "imagededup_phash": planted.score(found.theirs or set(), found.truth, same)
        | {"seconds": round(found.their_s, 1)},
        "largest_group": found.largest_group,
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
        for name, s in (
            ("imgsim (defaults)", found["imgsim"]),
            ("imagededup PHash", found["imagededup_phash"]),
        )
    ]
    print(table(["method", "pairs", "wrong", "precision", "recall", *kinds], rows))
    print(f"\nlargest group: {found['largest_group']} photos; {found['copies_line']}")
    for pair in found["imgsim"]["wrong"][:15]:
        print("  wrong:", " = ".join(pair))


if __name__ == "__main__":
    main()
