"""What every benchmark section shares: the photos, tables, percentiles, memory, a load generator."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np

from imgsim import config

ROOT = Path(__file__).resolve().parent.parent

FLOWERS = config.SHARED_FLOWERS
CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")


def table(headers: list[str], rows: list[list]) -> str:
    def cell(value):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def flower_files(per_class: int | None, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    files = []
    for name in CLASSES:
        photos = sorted((FLOWERS / name).glob("*.jpg"))
        files += photos if per_class is None else rng.sample(photos, per_class)
    return files


def copy_subset(files: list[Path], folder: Path) -> Path:
    """The files as folder/class/name (copies: links to files outside a collection are not indexed)."""
    for path in files:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return folder


def cpu_peak_gflops() -> tuple[float, str]:
    """Rough fp32 peak: cores x GHz x FLOP/cycle (2 FMA units of 16 lanes with AVX-512, 8 with AVX2)."""
    info = Path("/proc/cpuinfo").read_text()
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    ghz = (max(mhz) if mhz else 2000.0) / 1000
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = 2 * 2 * lanes  # FMA = 2 FLOPs, 2 units
    cores = os.cpu_count() or 1
    model = next((line.split(":")[1].strip() for line in info.splitlines() if "model name" in line), "?")
    return cores * ghz * per_cycle, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({model})"


def count_flops(model, side: int) -> int:
    """Floating-point operations of one forward pass at side x side, counted by TF's profiler."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, side, side, 3], tf.float32)
    )
    frozen = convert_variables_to_constants_v2(concrete)
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return int(profile.total_float_ops)


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and proportional (shared pages split between sharers) memory of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    pss = rss
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if rollup.exists():
        pss = next(
            int(line.split()[1]) for line in rollup.read_text().splitlines() if line.startswith("Pss:")
        )
    return rss / 1024, pss / 1024


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def clustered(count: int, dims: int, seed: int = 0) -> np.ndarray:
    """Vectors in 2,000 clusters: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(2000, dims)).astype(np.float32)
    out = np.empty((count, dims), dtype=np.float32)
    for start in range(0, count, 100_000):
        size = min(100_000, count - start)
        out[start : start + size] = centers[rng.integers(0, 2000, size)] + 0.7 * rng.normal(
            size=(size, dims)
        ).astype(np.float32)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_image(port: int, body: bytes) -> float:
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/search?k=10", body, {"Content-Type": "image/jpeg", "Accept": "application/json"})
    reply = conn.getresponse()
    reply.read()
    conn.close()
    if reply.status != 200:
        raise RuntimeError(f"POST /search answered {reply.status}")
    return 1000 * (time.perf_counter() - began)


def load_test(port: int, bodies: list[bytes], clients: int, seconds: float) -> tuple[list[float], float]:
    """``clients`` threads posting back to back for ``seconds``: latencies and requests/s."""
    done: list[float] = []
    stop = threading.Event()

    def client() -> None:
        i = 0
        while not stop.is_set():
            done.append(post_image(port, bodies[i % len(bodies)]))
            i += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return done, len(done) / (time.perf_counter() - began)
