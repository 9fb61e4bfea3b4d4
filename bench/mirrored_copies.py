"""Mirrored copies among flowers5's distinct photos (issue 36): pairs found, precision, recall per kind.

    .venv/bin/python -m bench.mirrored_copies

The planted set of the planted section (measure/planted.py: every distinct flowers5 photo, 20
copies of each kind) plus 20 mirrored copies, indexed with the defaults and EfficientNet-Lite0; the
pairs in the duplicate groups scored against the planted pairs, the source's own reviewed copies
counted right (bench/flowers5_reviewed_pairs.json), and the build's copy check as it logs it. One
JSON line on stdout.
"""

from __future__ import annotations

import json

from PIL import ImageOps

from bench.planted import plant_and_find, reviewed_same_pictures
from imgsim.measure import planted


def main() -> None:
    found = plant_and_find(10_000, 20, planted.KINDS | {"mirrored": ImageOps.mirror}, peer=False)
    scores = planted.score(found.ours, found.truth, reviewed_same_pictures())
    result = {
        "build_s": round(found.build_s, 1),
        "copies": next(line for line in found.said if line.startswith("Copies:")),
        "pairs": scores["pairs"],
        "precision": round(scores["precision"], 3),
        "recall": round(scores["recall"], 3),
        "per_kind": {kind: round(value, 2) for kind, value in scores["per_kind"].items()},
        "wrong": scores["wrong"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
