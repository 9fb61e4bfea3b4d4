"""A first build's memory, stage by stage (issue 34): the peak resident memory of the build's
process while each stage ran, and how long each took.

    .venv/bin/python -m bench.build_memory [--count N] [--model inception_v3] [--json]

The first N photos of flowers5 (default: all 4,317) indexed with the defaults and the shared
EfficientNet-Lite0 (or InceptionV3 with random weights: its memory is the real model's), in this
process; a thread reads the process's resident memory every 10 ms,
and the build's own log lines mark where each stage begins (the model loaded and the precision
chosen; embedding and the edited queries that calibrate; the segments written with their local
features; the depth and the labels; the verified copies).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import FLOWERS, table
from imgsim import config
from imgsim.indexing import indexer

STAGES = (  # (a log line's start that begins it, the stage)
    ("", "loading the model, choosing the precision"),
    ("Embedding in", "embedding, the edited queries"),
    ("Writing segment", "segments and their local features"),
    ("Index:", "depth and labels"),
    ("Copies looked for", "verified copies"),
)


def _resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for path in sorted(FLOWERS.glob("*/*.jpg"))[:count]:
        (folder / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    return folder


def measure(count: int, model: str = "") -> dict:
    samples: list[tuple[float, float]] = []  # (time, resident MB)
    marks: list[tuple[float, str]] = [(time.perf_counter(), STAGES[0][1])]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), _resident_mb()))
            time.sleep(0.01)

    def log(line: str) -> None:
        for start, stage in STAGES[1:]:
            if line.startswith(start) and stage not in [name for _, name in marks]:
                marks.append((time.perf_counter(), stage))

    with tempfile.TemporaryDirectory(prefix="imgsim-bench-memory-") as work:
        photos = _photos(Path(work) / "photos", count)
        cfg = config.Config(model=model or str(config.SHARED_MODEL), index_dir=Path(work) / "index")
        if model:  # a named Keras application: its ImageNet weights cannot be downloaded here
            cfg = cfg.replace(weights="none", model_cache=str(Path(work) / "cache"))
        before = _resident_mb()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        report = indexer.build_index(photos, cfg, progress=False, log=log)
        done.set()
        sampler.join()
    ends = [at for at, _ in marks[1:]] + [samples[-1][0]]
    stages = []
    for (began, stage), ended in zip(marks, ends, strict=True):
        inside = [mb for at, mb in samples if began <= at <= ended] or [0.0]
        stages.append({"stage": stage, "seconds": round(ended - began, 1), "peak_mb": round(max(inside))})
    return {"photos": report.items, "before_mb": round(before), "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="photos of flowers5 (default: all)")
    parser.add_argument("--model", default="", help="a Keras application (default: the shared model)")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args()
    if not config.SHARED_MODEL.is_file() or not FLOWERS.is_dir():
        sys.exit(f"needs the shared model and flowers5 in {config.SHARED_DIR}")
    found = measure(args.count, args.model)
    if args.json:
        print(json.dumps(found))
        return
    rows = [[s["stage"], s["seconds"], s["peak_mb"]] for s in found["stages"]]
    print(f"{found['photos']} photos; the process held {found['before_mb']} MB before the build\n")
    print(table(["stage of a first build", "seconds", "peak resident MB"], rows))


if __name__ == "__main__":
    main()
