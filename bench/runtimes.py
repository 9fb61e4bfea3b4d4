"""Benchmark section 7, runtime: TensorFlow vs OpenVINO side by side, decoding camera-size JPEGs with
and without reduced-scale decoding, and img2vec end to end on camera-size JPEGs, before and after.

Every comparison runs in one process, alternating the contenders round by round, so that a noisy
neighbour on a shared machine slows both alike; the best round of each counts.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import ROOT, count_flops, flower_files, table
from imgsim import config
from imgsim.images import imaging
from imgsim.indexing import indexer
from imgsim.models import embedders, runtimes

CAMERA = (4000, 3000)
BATCHES = (1, 8, 32)


def matmul_gflops(side: int = 3072, rounds: int = 5) -> float:
    """What a large float32 matrix multiply reaches here (NumPy's BLAS, all cores): the practical limit."""
    rng = np.random.default_rng(0)
    a, b = rng.random((side, side), np.float32), rng.random((side, side), np.float32)
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - began)
    return 2 * side**3 / best / 1e9


def runtime_child(model: str, rounds: int) -> dict:
    """Both runtimes on one model in this process: images/s per batch size, best of ``rounds``."""
    weights = None if model == "inception_v3" else "imagenet"
    on_tf = embedders.load_embedder(model, weights)
    folder = Path(tempfile.mkdtemp(prefix="imgsim-bench-ov-")) / "model"
    runtimes.convert(on_tf.model, folder, on_tf.key)  # the same weights, even random ones
    on_ov = dataclasses.replace(on_tf, model=runtimes.OpenVinoModel(folder), runtime="openvino")
    side = on_tf.input_size
    pixels = np.random.default_rng(0).integers(0, 256, (32, side, side, 3)).astype(np.uint8)
    flops = count_flops(on_tf.model, side)
    matmul = [matmul_gflops()]
    best = {(name, batch): float("inf") for name in ("tensorflow", "openvino") for batch in BATCHES}
    for embedder in (on_tf, on_ov):
        for batch in BATCHES:
            embedder.embed(pixels[:batch])  # warm-up: tracing, allocations
    for _ in range(rounds):
        for batch in BATCHES:
            images = 8 if batch == 1 else 32
            for embedder in (on_tf, on_ov):
                began = time.perf_counter()
                for start in range(0, images, batch):
                    embedder.embed(pixels[start : start + batch])
                per_image = (time.perf_counter() - began) / images
                best[embedder.runtime, batch] = min(best[embedder.runtime, batch], per_image)
        matmul.append(matmul_gflops())
    vectors_tf, vectors_ov = on_tf.embed(pixels[:8]), on_ov.embed(pixels[:8])
    cosine = (
        np.sum(vectors_tf * vectors_ov, 1)
        / np.linalg.norm(vectors_tf, axis=1)
        / np.linalg.norm(vectors_ov, axis=1)
    )
    return {
        "model": on_tf.name,
        "input": side,
        "gflops_per_image": flops / 1e9,
        "matmul_gflops": max(matmul),
        "min_cosine": float(cosine.min()),
        "runs": [
            {
                "runtime": name,
                "batch": batch,
                "images_per_s": 1 / seconds,
                "gflops_per_s": flops / seconds / 1e9,
            }
            for (name, batch), seconds in best.items()
        ],
    }


def camera_jpegs(folder: Path, count: int) -> list[Path]:
    """``count`` flower photos enlarged to 4000x3000 and saved as camera-like JPEGs (quality 92)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, source in enumerate(flower_files(None)[:: max(1, 4317 // count)][:count]):
        path = folder / f"camera{n:04d}.jpg"
        Image.open(source).convert("RGB").resize(CAMERA, Image.Resampling.BILINEAR).save(path, quality=92)
        paths.append(path)
    return paths


def decode_ms(path: Path, rounds: int = 5) -> dict:
    """One 4000x3000 JPEG decoded and resized to InceptionV3's 299: whole, and at reduced scale."""
    data = path.read_bytes()
    best = {"full": float("inf"), "draft": float("inf")}
    for _ in range(rounds):
        for name, min_side in (("full", None), ("draft", 2 * 299)):
            began = time.perf_counter()
            imaging.to_square(imaging.decode_rgb(data, min_side=min_side), 299)
            best[name] = min(best[name], 1000 * (time.perf_counter() - began))
    return best


@dataclasses.dataclass
class _FullDecode(embedders.Embedder):
    """The code before reduced-scale decoding: every image decoded at full size."""

    @property
    def decode_side(self) -> int:
        return 0


def end_to_end(photos: Path, workdir: Path) -> list[dict]:
    """img2vec's build on camera JPEGs, per model three ways: round 1's code, this round's start, now.

    The ways alternate within a model and each runs twice; the faster run counts."""
    records = []
    for model, weights in (("inception_v3", None), (str(config.SHARED_MODEL), "imagenet")):
        tf = embedders.load_embedder(model, weights)
        runtimes.convert(tf.model, runtimes.cache_folder(workdir / "cache", tf.key), tf.key)
        ov = embedders.load_embedder(model, weights, 0, runtimes.Runtime("openvino", workdir / "cache"))
        ways = [
            ("round 1: TensorFlow, full decode, 4 threads", _FullDecode(**vars(tf)), 4),
            ("round start: TensorFlow, reduced decode, 4 threads", tf, 4),
            ("now: OpenVINO, reduced decode, a thread per core", ov, 0),
        ]
        best = {label: float("inf") for label, _, _ in ways}
        for attempt in range(2):
            for n, (label, embedder, threads) in enumerate(ways):
                folder = workdir / f"index-{attempt}-{n}-{tf.name}"
                cfg = config.Config(index_dir=folder, decode_workers=threads)
                began = time.perf_counter()
                report = indexer.build_index(photos, cfg, embedder, progress=False, log=lambda _: None)
                best[label] = min(best[label], time.perf_counter() - began)
        records += [
            {"model": tf.name, "way": label, "images": report.items, "seconds": seconds}
            | {"images_per_s": report.items / seconds}
            for label, seconds in best.items()
        ]
    return records


def bench_runtime(quick: bool) -> tuple[dict, str]:
    models = []
    for model in ("inception_v3", str(config.SHARED_MODEL)):
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), "--child-runtime", model, "2" if quick else "5"],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        models.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for result in models:
        rates = {(r["runtime"], r["batch"]): r for r in result["runs"]}
        for batch in BATCHES:
            tf, ov = rates["tensorflow", batch], rates["openvino", batch]
            rows.append(
                [result["model"], batch, tf["images_per_s"], ov["images_per_s"]]
                + [f"{ov['images_per_s'] / tf['images_per_s']:.2f}x"]
                + [f"{100 * r['gflops_per_s'] / result['matmul_gflops']:.0f}%" for r in (tf, ov)]
            )
    text = table(
        ["model", "batch", "TF images/s", "OV images/s", "OV / TF", "TF of matmul", "OV of matmul"], rows
    )
    text += "\n\n" + "; ".join(
        f"{m['model']}: {m['gflops_per_image']:.2f} GFLOP/image, min cosine TF vs OV {m['min_cosine']:.6f}"
        for m in models
    )
    matmul = max(m["matmul_gflops"] for m in models)
    text += f". Matrix multiply (float32, 3072^2, NumPy BLAS): {matmul:.0f} GFLOP/s."
    with tempfile.TemporaryDirectory(prefix="imgsim-camera-") as tmp:
        photos = camera_jpegs(Path(tmp) / "photos", 40 if quick else 200)
        decode = decode_ms(photos[0])
        builds = end_to_end(Path(tmp) / "photos", Path(tmp))
    text += "\n\n" + table(
        ["4000x3000 JPEG to 299x299", "ms"],
        [["full decode", decode["full"]], ["reduced-scale (draft)", decode["draft"]]],
    )
    base = {b["model"]: b["images_per_s"] for b in builds if b["way"].startswith("round 1")}
    text += "\n\n" + table(
        ["model", "img2vec.py on camera JPEGs", "images", "seconds", "images/s", "vs round 1"],
        [
            [b["model"], b["way"], b["images"], b["seconds"], b["images_per_s"]]
            + [f"{b['images_per_s'] / base[b['model']]:.2f}x"]
            for b in builds
        ],
    )
    return {"models": models, "decode_ms": decode, "end_to_end": builds}, text
