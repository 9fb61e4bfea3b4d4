"""Benchmark section 11, precision: f32, bf16 and int8 side by side, on this CPU.

Per precision: a 2048x2048 matrix multiply in OpenVINO (the rate the arithmetic allows here);
images/s of InceptionV3 (random weights: speed only) and EfficientNet-Lite0 (GeM, border trimming:
the defaults) at batch 1/8/32, the precisions alternating round by round, best of the rounds;
Lite0's agreement with f32 on 200 flowers outside the int8 calibration set; P@1, P@10, mAP and
edited-copy rank-1 per edit on the whole of flowers5; img2vec end to end on 200 camera-size JPEGs;
POST /search p50, 8-client throughput and worker RSS through gunicorn. int8 is NNCF's post-training
quantization as the build runs it (runtimes.quantize), calibrated on 300 flowers.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import FLOWERS, flower_files, free_port, table
from bench.runtimes import camera_jpegs
from bench.service import _measure, gunicorn
from imgsim import config
from imgsim.images import imaging
from imgsim.indexing import indexer
from imgsim.measure import scoring
from imgsim.models import embedders, runtimes
from imgsim.search import annoy_index

PRECISIONS = ("f32", "bf16", "int8")
BATCHES = (1, 8, 32)


def cpu() -> str:
    """The CPU model and the flags that decide which precisions run natively."""
    flags = set()
    model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    present = " ".join(f for f in wanted if f in flags)
    return f"{model}; flags: {present}; OpenVINO: {sorted(runtimes.capabilities())}"


def matmul_gflops(hint: str, side: int = 2048, rounds: int = 5) -> float:
    import openvino
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    data = ops.parameter([side, side], np.float32)
    weights = ops.constant(rng.random((side, side), np.float32))
    model = openvino.Model([ops.matmul(data, weights, False, False)], [data])
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    request, x = compiled.create_infer_request(), rng.random((side, side), np.float32)
    request.infer({0: x})
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        request.infer({0: x})
        best = min(best, time.perf_counter() - began)
    return 2 * side**3 / best / 1e9


def _networks(model: str, workdir: Path, files: list[Path]) -> dict[str, embedders.Embedder]:
    """One model at each precision, int8 quantized on the photos in ``files``."""
    pooling, trim = ("avg", False) if model == "inception_v3" else ("gem", True)
    on = runtimes.Runtime("openvino", workdir / "cache", precision="f32", log=lambda _: None)
    f32 = embedders.load_embedder(model, None, 0, on, pooling=pooling, trim=trim)
    calibration = _prepared(f32, files)
    folder = workdir / f"int8-{f32.name}"
    batches = [f32.preprocess(calibration[i : i + 1].astype(np.float32)) for i in range(len(calibration))]
    runtimes.quantize(f32.converted, folder, runtimes.int8_stamp(f32.key, "bench"), batches)
    return {
        "f32": f32,
        "bf16": embedders.at_precision(f32, "bf16"),
        "int8": embedders.at_precision(f32, "int8", folder),
    }


def _speeds(networks: dict[str, embedders.Embedder], rounds: int) -> dict[tuple[str, int], float]:
    side = next(iter(networks.values())).input_size
    pixels = np.random.default_rng(0).integers(0, 256, (max(BATCHES), side, side, 3)).astype(np.uint8)
    best = {(p, b): float("inf") for p in networks for b in BATCHES}
    for network in networks.values():
        network.embed(pixels[:1])
    for _ in range(rounds):
        for batch in BATCHES:
            for name, network in networks.items():
                began = time.perf_counter()
                network.embed(pixels[:batch])
                best[name, batch] = min(best[name, batch], time.perf_counter() - began)
    return {key: BATCHES[BATCHES.index(key[1])] / seconds for key, seconds in best.items()}


def _prepared(embedder: embedders.Embedder, files: list[Path]) -> np.ndarray:
    return np.stack([embedder.prepare(imaging.open_rgb(f, min_side=embedder.decode_side)) for f in files])


def _quality(workdir: Path, quick: bool) -> list[dict]:
    """Indexes of flowers5 built at each precision (asked for), scored as section 9 scores them."""
    rows = []
    for name in PRECISIONS:
        cfg = config.Config(
            model=str(config.SHARED_MODEL),
            index_dir=workdir / f"quality-{name}",
            precision=name,
            model_cache=str(workdir / "cache"),
        )
        report = indexer.build_index(FLOWERS, cfg, progress=False, log=lambda _: None)
        index = annoy_index.open_index(cfg.index_dir)
        embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg, lambda _: None))
        scores = scoring.evaluate_index(index) | scoring.evaluate_edits(index, embedder, 20 if quick else 50)
        rows.append({"precision": name, "build_s": round(report.seconds, 1), **scores})
        print(f"  precision quality {name}: {report.seconds:.0f} s", file=sys.stderr, flush=True)
    return rows


def _end_to_end(workdir: Path, photos: Path) -> list[dict]:
    rows = []
    for model in ("inception_v3", str(config.SHARED_MODEL)):
        for name in PRECISIONS:
            weights = "none" if model == "inception_v3" else "imagenet"
            cfg = config.Config(
                model=model,
                weights=weights,
                index_dir=workdir / f"e2e-{name}-{Path(model).stem}",
                precision=name,
                model_cache=str(workdir / "cache"),
                recall_sample=0,
                precision_sample=100,
            )
            indexer.build_index(photos, cfg, progress=False, log=lambda _: None)  # converts, quantizes
            shutil.rmtree(cfg.index_dir)
            report = indexer.build_index(photos, cfg, progress=False, log=lambda _: None)
            rate = report.items / report.seconds
            rows.append(
                {
                    "model": Path(model).stem,
                    "precision": name,
                    "seconds": report.seconds,
                    "images_per_s": rate,
                }
            )
    return rows


def _service(workdir: Path, quick: bool) -> list[dict]:
    bodies = [f.read_bytes() for f in flower_files(4)]
    rows = []
    for name in PRECISIONS:
        index_dir = workdir / f"quality-{name}"
        port = free_port()
        with gunicorn(index_dir, port, 2, {"IMGSIM_MODEL_CACHE": str(workdir / "cache")}) as server:
            measured = _measure(server, port, bodies, 30 if quick else 100, 10 if quick else 30)
        rows.append({"precision": name, **measured})
    return rows


def bench_precision(quick: bool) -> tuple[dict, str]:
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-bench-precision-"))
    try:
        return _bench(workdir, quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _bench(workdir: Path, quick: bool) -> tuple[dict, str]:
    files = flower_files(None)[::7]
    calibration_files, agreement_files = files[:300], files[300:500]
    data: dict = {
        "cpu": cpu(),
        "matmul_gflops": {p: matmul_gflops(h) for p, h in (("f32", "f32"), ("bf16", "bf16"))},
    }
    speed_rows, agreement = [], {}
    for model in ("inception_v3", str(config.SHARED_MODEL)):
        networks = _networks(model, workdir, calibration_files)
        reference = networks["f32"]
        speeds = _speeds(networks, 2 if quick else 5)
        for p in PRECISIONS:
            gains = [f"{speeds[p, b] / speeds['f32', b]:.2f}x" for b in (32, 1)]
            speed_rows.append([networks["f32"].name, p, *(f"{speeds[p, b]:.1f}" for b in BATCHES), *gains])
        if model != "inception_v3":  # random weights say nothing about agreement
            pixels = _prepared(reference, agreement_files)
            ref = networks["f32"].embed(pixels)
            for name in PRECISIONS:
                got = networks[name].embed(pixels)
                agreement[name] = agreement.compare(
                    name, (ref, ref[:0]), (got, got[:0]), np.array([], int)
                ).to_dict()
    data["speed"], data["agreement"] = speed_rows, agreement
    data["quality"] = _quality(workdir, quick)
    photos = workdir / "camera"
    camera_jpegs(photos, 50 if quick else 200)
    data["end_to_end"] = _end_to_end(workdir, photos)
    data["service"] = _service(workdir, quick)
    return data, _tables(data)


def _tables(data: dict) -> str:
    edit_names = _edits(data["quality"])
    quality = [
        [r["precision"], *(f"{r[key]:.4f}" for key in ("p@1", "p@10", "map"))]
        + [f"{r['edits'][e]['rank1']:.2f}" for e in edit_names]
        for r in data["quality"]
    ]
    end_to_end = [
        [r["model"], r["precision"], f"{r['seconds']:.1f}", f"{r['images_per_s']:.1f}"]
        for r in data["end_to_end"]
    ]
    service = [
        [r["precision"], f"{r['p50_ms']:.1f}", f"{r['rps_8_clients']:.1f}", f"{r['loaded_p95_ms']:.0f}"]
        + [" / ".join(f"{m:.0f}" for m in r["worker_rss_mb"])]
        for r in data["service"]
    ]
    agreement = [
        [p, a["mean_cosine"], a["min_cosine"], a["top10"], a["passed"]] for p, a in data["agreement"].items()
    ]
    matmul = [[p, f"{g:.0f}"] for p, g in data["matmul_gflops"].items()]
    speed_headers = ["model", "precision", "b1 img/s", "b8 img/s", "b32 img/s", "b32 vs f32", "b1 vs f32"]
    return "\n\n".join(
        [
            f"CPU: {data['cpu']}",
            table(["precision", "matmul 2048² GFLOP/s"], matmul),
            table(speed_headers, data["speed"]),
            table(["precision", "mean cosine", "min cosine", "top-10 shared", "passes the gates"], agreement),
            table(["precision", "P@1", "P@10", "mAP"] + [f"rank-1 {e}" for e in edit_names], quality),
            table(["model", "precision", "seconds", "images/s"], end_to_end),
            table(
                ["precision", "p50 ms", "req/s (8 clients)", "p95 ms under load", "worker RSS MB"], service
            ),
        ]
    )


def _edits(quality: list[dict]) -> list[str]:
    return sorted(quality[0]["edits"]) if quality and "edits" in quality[0] else []
