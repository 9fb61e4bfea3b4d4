"""Indexing at the network's rate (issue 34): a first build's embedding stage beside the network
alone, the same model at the precision ``--precision auto`` chose, on the same machine in one run.

    .venv/bin/python -m bench.embedding_rate [--count N] [--camera N] [--json]

Small photos: the first N of flowers5 (128 x 128 pixels). Camera-size JPEGs: N of them made by
enlarging flowers5 photos to 4000 x 3000 (quality 90), where decoding is most of the work. For each
set: the build's embedding stage (decoding in threads while the network runs, local engine) in
images per second, the network alone on the same photos already prepared, and decoding alone
(the same threads, no network). InceptionV3 runs with random weights (its speed is the real
model's; its ImageNet weights cannot be downloaded here). Then each set's first build twice, one
after the other: its segments' local features found from the files decoded again (as before
section 20) and in the decoding threads from the network's decode: the embedding stage, the
features' seconds and both together in images per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import FLOWERS, table
from imgsim import config
from imgsim.images import imaging
from imgsim.index import store
from imgsim.indexing import indexer, local_engine, verifying
from imgsim.models import embedders, runtimes
from imgsim.search import annoy_index


def _camera_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for n, path in enumerate(sorted(FLOWERS.glob("*/*.jpg"))[:count]):
        photo = imaging.open_rgb(path).resize((4000, 3000), Image.Resampling.BICUBIC)
        photo.save(folder / f"{n:04d}.jpg", quality=90)
    return folder


def _small_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for n, path in enumerate(sorted(FLOWERS.glob("*/*.jpg"))[:count]):
        (folder / f"{n:04d}.jpg").write_bytes(path.read_bytes())
    return folder


def _features_timed(spent: list[float]):
    """verifying.plan_features, its features of each segment's items timed into ``spent``."""
    plan_features = verifying.plan_features

    def timed(plan, found=None):
        features = plan_features(plan, found)

        def run(chunk):
            began = time.perf_counter()
            try:
                return features(chunk)
            finally:
                spent.append(time.perf_counter() - began)

        return run

    return timed


def _build(photos: Path, cfg: config.Config, in_decoding: bool) -> dict:
    """A first build at the precision given (none measured): its embedding stage and its segments'
    local features, in images per second, the features found in the decoding threads
    (``in_decoding``) or from the files again."""
    spent: list[float] = []
    local_engine.FIND_FEATURES, verifying.plan_features = in_decoding, _features_timed(spent)
    try:
        report = indexer.build_index(photos, cfg, progress=False, log=lambda _: None)
    finally:
        local_engine.FIND_FEATURES, verifying.plan_features = True, _PLAN_FEATURES
    return {
        "stage_per_s": round(report.embedded / report.embed_seconds, 1),
        "features_seconds": round(sum(spent), 2),
        "with_features_per_s": round(report.embedded / (report.embed_seconds + sum(spent)), 1),
    }


_PLAN_FEATURES = verifying.plan_features


def _measure(photos: Path, workdir: Path, model: str) -> dict:
    def settings(name: str, precision: str = "auto") -> config.Config:
        return config.Config(
            model=model,
            weights="none",
            index_dir=workdir / name,
            model_cache=str(workdir / "cache"),
            recall_sample=0,
            precision_sample=100,
            precision=precision,
        )

    cfg = settings("index")
    report = indexer.build_index(photos, cfg, progress=False, log=lambda _: None)
    stage = (report.embedded - report.measured) / report.embed_seconds
    chosen = store.read_manifest(report.version).precision
    again = _build(photos, settings("again", chosen), in_decoding=False)  # decoded again (before)
    once = _build(photos, settings("once", chosen), in_decoding=True)
    index = annoy_index.open_index(cfg.index_dir)
    embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg, lambda _: None))
    files = sorted(photos.glob("*.jpg"))

    def decode(path: Path) -> np.ndarray:
        return embedder.prepare(imaging.open_rgb(path, cfg.max_image_pixels, embedder.decode_side))

    began = time.perf_counter()
    with ThreadPoolExecutor(config.decode_threads(cfg)) as pool:
        prepared = list(pool.map(decode, files))
    decode_rate = len(files) / (time.perf_counter() - began)
    pixels = np.stack(prepared)
    embedder.embed(pixels[: cfg.batch_size])  # warm
    began = time.perf_counter()
    for start in range(0, len(pixels), cfg.batch_size):
        embedder.embed(pixels[start : start + cfg.batch_size])
    network = len(pixels) / (time.perf_counter() - began)
    return {
        "precision": embedder.precision,
        "images": len(files),
        "features_decoded_again": again,
        "features_in_decoding": once,
        "stage_per_s": round(stage, 1),
        "network_per_s": round(network, 1),
        "decode_per_s": round(decode_rate, 1),
        "share_of_network": round(stage / network, 3),
        "decode_share": round(network / decode_rate, 3),  # of the network's time, decoding's (alone)
    }


def run(count: int, camera: int, model: str = "inception_v3") -> dict:
    with tempfile.TemporaryDirectory(prefix="imgsim-bench-rate-") as work:
        workdir = Path(work)
        small = _measure(_small_photos(workdir / "small", count), workdir / "a", model)
        large = _measure(_camera_photos(workdir / "camera", camera), workdir / "b", model)
    return {"model": model, "small_photos": small, "camera_jpegs": large}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="small photos (default 1000)")
    parser.add_argument("--camera", type=int, default=120, help="camera-size JPEGs (default 120)")
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    args = parser.parse_args()
    found = run(args.count, args.camera)
    if args.json:
        print(json.dumps(found))
        return
    rows = [
        [
            name,
            r["images"],
            r["precision"],
            r["stage_per_s"],
            r["network_per_s"],
            f"{r['share_of_network']:.0%}",
        ]
        + [r["decode_per_s"]]
        for name, r in (("small photos", found["small_photos"]), ("camera JPEGs", found["camera_jpegs"]))
    ]
    headers = ["photos", "count", "precision", "build's stage img/s", "network alone img/s", "share"]
    print(table([*headers, "decoding alone img/s"], rows), file=sys.stdout)
    columns = (("features_decoded_again", "files decoded again"), ("features_in_decoding", "in decoding"))
    features = [
        [name, how, r[key]["stage_per_s"], r[key]["features_seconds"], r[key]["with_features_per_s"]]
        for name, r in (("small photos", found["small_photos"]), ("camera JPEGs", found["camera_jpegs"]))
        for key, how in columns
    ]
    headers = ["photos", "local features found", "embedding stage img/s", "features s", "both img/s"]
    print("\n" + table(headers, features), file=sys.stdout)


if __name__ == "__main__":
    main()
