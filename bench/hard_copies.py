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
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import table
from bench.planted import REVIEWED, _imagededup
from imgsim import config
from imgsim.duplicates import finding
from imgsim.indexing import indexer
from imgsim.measure import hard_copies, planted
from imgsim.search import annoy_index


def run(per_kind: int = 20) -> dict:
    planted.KINDS = dict(hard_copies.KINDS)  # plant() reads the module's kinds
    work = Path(tempfile.mkdtemp(prefix="imgsim-bench-hard-"))
    try:
        truth = planted.plant(config.SHARED_FLOWERS, work / "photos", 10_000, per_kind, seed=0)
        cfg = config.Config(index_dir=work / "index", model=str(config.SHARED_MODEL))
        said: list[str] = []
        began = time.perf_counter()
        indexer.build_index(work / "photos", cfg, progress=False, log=said.append)
        build_s = time.perf_counter() - began
        _, groups = finding.find_duplicates(annoy_index.open_index(cfg.index_dir))
        ours = planted.pairs_of([[member.path for member in group.members] for group in groups])
        theirs, their_s = _imagededup(work / "photos")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = {frozenset(pair) for pair in json.loads(REVIEWED.read_text())["same_picture"]}
    return {
        "imgsim": planted.score(ours, truth, same) | {"build_s": round(build_s, 1)},
        "imagededup_phash": planted.score(theirs, truth, same) | {"seconds": round(their_s, 1)},
        "largest_group": max((len(group.members) for group in groups), default=0),
        "copies_line": next((line for line in said if line.startswith("Copies:")), ""),
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
