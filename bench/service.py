"""Benchmark section 4: POST /search through gunicorn on loopback, alone and under 8 clients, for the
service as the round started (TensorFlow, one query per pass) and with each change on its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import (
    ROOT,
    copy_subset,
    flower_files,
    free_port,
    load_test,
    percentile,
    post_image,
    rss_mb,
    table,
)
from imgsim import config
from imgsim.images import imaging
from imgsim.indexing import indexer
from imgsim.models import embedders, runtimes
from imgsim.search import annoy_index

HEADERS = [
    "model",
    "runtime, queries",
    "bare pass ms",
    "p50 ms",
    "p50 / bare",
    "p95 ms",
    "req/s (8 clients)",
    "p95 ms under load",
    "worker RSS MB",
    "worker PSS MB",
]
# (label, settings, workers): the service as the round started, then each change on its own
ROUND_START = {"IMGSIM_RUNTIME": "tensorflow", "IMGSIM_QUERY_BATCH": "1", "IMGSIM_THREADS": "2"}
VARIANTS = [
    ("TensorFlow, one query per pass, 2x2", ROUND_START, 2),
    ("OpenVINO, one query per pass, 2x2", ROUND_START | {"IMGSIM_RUNTIME": "openvino"}, 2),
    ("OpenVINO, shared passes of 4, 2x2", {"IMGSIM_RUNTIME": "openvino", "IMGSIM_THREADS": "2"}, 2),
    ("OpenVINO, shared passes of 4, 2x4 (defaults)", {"IMGSIM_THREADS": "4"}, 2),
    ("OpenVINO, shared passes of 16, 2x8", {"IMGSIM_THREADS": "8", "IMGSIM_QUERY_BATCH": "16"}, 2),
    ("OpenVINO, shared passes of 16, 1x8", {"IMGSIM_THREADS": "8", "IMGSIM_QUERY_BATCH": "16"}, 1),
]


@contextlib.contextmanager
def gunicorn(
    index_dir: Path, port: int, workers: int = 2, settings: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """The service as production runs it, on a loopback port; stopped (whole group) on exit."""
    env = {
        **os.environ,
        "IMGSIM_INDEX_DIR": str(index_dir),
        "IMGSIM_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        **(settings or {}),
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        "gunicorn.conf.py",
        "--access-logfile",
        "/dev/null",
        "app:create_app()",
    ]
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def _measure(
    server: subprocess.Popen, port: int, bodies: list[bytes], sequential: int, seconds: float
) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            post_image(port, bodies[0])
            break
        except (OSError, RuntimeError):
            time.sleep(0.5)
    for body in bodies:  # warm both workers
        post_image(port, body)
        post_image(port, body)
    latencies = [post_image(port, bodies[i % len(bodies)]) for i in range(sequential)]
    done, rate = load_test(port, bodies, clients=8, seconds=seconds)
    children = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
    memory = [rss_mb(pid) for pid in children]
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "rps_8_clients": rate,
        "loaded_p50_ms": percentile(done, 50),
        "loaded_p95_ms": percentile(done, 95),
        "worker_rss_mb": [m[0] for m in memory],
        "worker_pss_mb": [m[1] for m in memory],
    }


def bare_pass_ms(index_dir: Path, runtime: str, body: bytes, rounds: int = 30) -> float:
    """The network alone on one query (batch 1), median of ``rounds``: what a search cannot beat."""
    index = annoy_index.open_index(index_dir)
    cfg = config.Config(runtime=runtime)
    embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg, lambda _: None))
    pixels = embedder.prepare(imaging.decode_rgb(body, min_side=embedder.decode_side))[None]
    embedder.embed(pixels)
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        embedder.embed(pixels)
        times.append(1000 * (time.perf_counter() - began))
    return percentile(times, 50)


def network_rate(index_dir: Path, bodies: list[bytes], batch: int, seconds: float = 10.0) -> float:
    """The network alone, images per second: ``bodies`` prepared beforehand, embedded ``batch`` at
    a time back to back for ``seconds`` on every core (what 8 clients are held against)."""
    index = annoy_index.open_index(index_dir)
    embedder = embedders.for_index(
        index.manifest, index.version, runtimes.of(config.Config(), lambda _: None)
    )
    prepared = [embedder.prepare(imaging.decode_rgb(body, min_side=embedder.decode_side)) for body in bodies]
    batches = [np.stack(prepared[i : i + batch]) for i in range(0, len(prepared) - batch + 1, batch)]
    embedder.embed(batches[0])
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        embedder.embed(batches[done // batch % len(batches)])
        done += batch
    return done / (time.perf_counter() - began)


def bench_service(quick: bool) -> tuple[dict, str]:
    sequential = 30 if quick else 100
    load_seconds = 10 if quick else 30
    rows, data = [], []
    bodies = [path.read_bytes() for path in flower_files(4, seed=3)]
    for label, model, weights, per_class in (
        ("efficientnet_lite0", str(config.SHARED_MODEL), "imagenet", 40),
        ("inception_v3 (random weights)", "inception_v3", "none", 8),
    ):
        with tempfile.TemporaryDirectory(prefix="imgsim-service-") as tmp:
            photos = copy_subset(flower_files(per_class), Path(tmp) / "flowers")
            cfg = config.Config(index_dir=Path(tmp) / "index", model=model, weights=weights)
            indexer.build_index(photos, cfg, progress=False, log=lambda _: None)
            for variant, settings, workers in VARIANTS:
                bare = bare_pass_ms(cfg.index_dir, settings.get("IMGSIM_RUNTIME", "openvino"), bodies[0])
                port = free_port()
                with gunicorn(cfg.index_dir, port, workers, settings) as server:
                    measured = _measure(server, port, bodies, sequential, load_seconds)
                record = {"model": label, "variant": variant, "bare_pass_ms": bare, **measured}
                data.append(record)
                rows.append(
                    [label, variant, bare, record["p50_ms"], f"{record['p50_ms'] / bare:.2f}x"]
                    + [record["p95_ms"], record["rps_8_clients"], record["loaded_p95_ms"]]
                    + [" / ".join(f"{m:.0f}" for m in record["worker_rss_mb"])]
                    + [" / ".join(f"{m:.0f}" for m in record["worker_pss_mb"])]
                )
    text = table(HEADERS, rows)
    text += (
        f"\n\ngunicorn, gthread workers x threads as said, loopback; 128x128 JPEG bodies, k=10; "
        f"{sequential} sequential requests, then 8 concurrent clients for {load_seconds} s. The bare pass "
        "is the network alone on one query in the benchmark's process, before the server starts."
    )
    return {"service": data}, text
