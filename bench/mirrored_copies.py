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
import tempfile
import time
from pathlib import Path

from PIL import ImageOps

from imgsim import config
from imgsim.duplicates import finding
from imgsim.indexing import indexer
from imgsim.measure import planted
from imgsim.search import annoy_index

REVIEWED = Path(__file__).with_name("flowers5_reviewed_pairs.json")


def main() -> None:
    kinds = planted.KINDS | {"mirrored": ImageOps.mirror}
    planted.KINDS = kinds  # plant() reads the module's kinds
    work = Path(tempfile.mkdtemp())
    truth = planted.plant(config.SHARED_FLOWERS, work / "photos", per_class=10_000, per_kind=20, seed=0)
    cfg = config.Config(index_dir=work / "index", model=str(config.SHARED_MODEL))
    said: list[str] = []
    began = time.perf_counter()
    indexer.build_index(work / "photos", cfg, progress=False, log=said.append)
    build_s = time.perf_counter() - began
    _, groups = finding.find_duplicates(annoy_index.open_index(cfg.index_dir))
    found = planted.pairs_of([[member.path for member in group.members] for group in groups])
    same = {frozenset(pair) for pair in json.loads(REVIEWED.read_text())["same_picture"]}
    scores = planted.score(found, truth, same)
    result = {
        "build_s": round(build_s, 1),
        "copies": next(line for line in said if line.startswith("Copies:")),
        "pairs": scores["pairs"],
        "precision": round(scores["precision"], 3),
        "recall": round(scores["recall"], 3),
        "per_kind": {kind: round(value, 2) for kind, value in scores["per_kind"].items()},
        "wrong": scores["wrong"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
