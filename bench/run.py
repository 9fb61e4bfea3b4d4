"""Measure imgsim on this machine and print Markdown tables (also written as JSON).

    python bench/run.py [--quick] [--only embed,annoy,quality,service] [--out FILE]

1. embed:   images/s and peak memory of InceptionV3 (random weights: speed only) and the shared
            EfficientNet-Lite0 at batch sizes 1, 8, 32; decoding cost alone; decode vs network
            share; achieved GFLOP/s against an estimate of this CPU's peak.
2. annoy:   build time, file size, query latency and recall@10 against exact search, for
            synthetic clustered vectors; exact numpy search as the baseline.
3. quality: flowers5 leave-one-out P@1/P@10/mAP for full vectors vs autoencoder-256 vs PCA-256.
4. service: POST /search latency p50/p95/p99 and requests/s through gunicorn on loopback.
5. live:    search latency with a live delta of 0 / 1,000 / 10,000 items in front of Annoy, the time
            from POST /images to searchable, and compaction time.

--quick (under 5 minutes) uses fewer images, sizes and seconds; the full run takes under 30.
Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import config  # noqa: E402
import imaging  # noqa: E402

FLOWERS = config.SHARED_FLOWERS
CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")


# --- helpers ----------------------------------------------------------------------------------


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


def link_subset(files: list[Path], folder: Path) -> Path:
    for path in files:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
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


# --- 1. embedding -----------------------------------------------------------------------------


def embed_child(model: str, count: int) -> dict:
    """Run in a fresh process so that its peak memory is the model's own."""
    import img2vec

    weights = None if model == "inception_v3" else "imagenet"
    embedder = img2vec.load_embedder(model, weights)
    files = flower_files(None)[:: max(1, 4317 // count)][:count]
    started = time.perf_counter()
    pixels = np.stack([embedder.prepare(imaging.open_rgb(path)) for path in files])
    decode_ms = 1000 * (time.perf_counter() - started) / len(files)
    flops = count_flops(embedder.model, embedder.input_size)
    results = []
    for batch in (1, 8, 32):
        embedder.embed(pixels[:batch])  # warm-up: graph tracing, allocations
        use = pixels[: max(batch, (count // batch) * batch if batch > 1 else min(count, 24))]
        began = time.perf_counter()
        for start in range(0, len(use), batch):
            embedder.embed(use[start : start + batch])
        seconds = time.perf_counter() - began
        rate = len(use) / seconds
        results.append(
            {
                "batch": batch,
                "images": len(use),
                "images_per_s": rate,
                "net_ms_per_image": 1000 / rate,
                "gflops_per_s": flops * rate / 1e9,
            }
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": embedder.name,
        "input": embedder.input_size,
        "dim": embedder.dim,
        "gflops_per_image": flops / 1e9,
        "decode_ms_per_image": decode_ms,
        "peak_rss_mb": peak,
        "runs": results,
    }


def bench_embed(quick: bool) -> tuple[dict, str]:
    peak, peak_note = cpu_peak_gflops()
    rows, data = [], []
    for model in ("inception_v3", str(config.SHARED_MODEL)):
        count = 32 if quick else 128
        out = subprocess.run(
            [sys.executable, __file__, "--child-embed", model, str(count)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        data.append(result)
        for run in result["runs"]:
            share = result["decode_ms_per_image"] / (result["decode_ms_per_image"] + run["net_ms_per_image"])
            name = result["model"] + (" (random weights)" if model == "inception_v3" else "")
            rows.append(
                [
                    name,
                    run["batch"],
                    run["images_per_s"],
                    run["net_ms_per_image"],
                    result["decode_ms_per_image"],
                    f"{100 * share:.0f}%",
                    run["gflops_per_s"],
                    f"{100 * run['gflops_per_s'] / peak:.1f}%",
                    result["peak_rss_mb"],
                ]
            )
    text = table(
        [
            "model",
            "batch",
            "images/s",
            "network ms/img",
            "decode ms/img",
            "decode share",
            "GFLOP/s",
            "of peak",
            "peak RSS MB",
        ],
        rows,
    )
    flops = ", ".join(f"{d['model']} {d['gflops_per_image']:.2f} GFLOP/image" for d in data)
    text += f"\n\nPeak estimate {peak:.0f} GFLOP/s = {peak_note}. Network cost: {flops}."
    text += " Decoding is one thread over 128x128 JPEGs, resize included; peak RSS covers all batch sizes."
    return {"models": data, "cpu_peak_gflops": peak, "cpu": peak_note}, text


# --- 2. Annoy ---------------------------------------------------------------------------------


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


def bench_annoy(quick: bool) -> tuple[dict, str]:
    import ann

    shapes = (
        [(25_000, 256), (25_000, 2048)]
        if quick
        else [(25_000, 256), (100_000, 256), (1_000_000, 256), (25_000, 2048), (100_000, 2048)]
    )
    tree_counts = (10, 100) if quick else (10, 50, 100, 200)
    queries_n, k = (100 if quick else 200), 10
    rows, exact_rows, data = [], [], []
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-bench-"))
    try:
        for count, dims in shapes:
            vectors = clustered(count, dims)
            rng = np.random.default_rng(1)
            picks = rng.choice(count, queries_n, replace=False)
            queries = vectors[picks] + 0.3 * rng.normal(size=(queries_n, dims)).astype(np.float32)
            unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            began = time.perf_counter()
            exact = []
            for query in queries:
                sims = unit @ (query / np.linalg.norm(query))
                top = np.argpartition(-sims, k)[:k]
                exact.append(top[np.argsort(-sims[top])].tolist())
            exact_ms = 1000 * (time.perf_counter() - began) / queries_n
            exact_rows.append([f"{count:,}", dims, exact_ms, unit.nbytes / 2**20])
            for trees in tree_counts:
                if count >= 1_000_000 and trees > 100:
                    continue  # over the 30-minute budget on 2 cores; see docs/benchmarks.md
                path = workdir / "index.ann"
                began = time.perf_counter()
                ann.build(vectors, path, "angular", trees)
                build_s = time.perf_counter() - began
                index = ann.load(path, dims)
                for search_k in (-1, 10 * trees * k):
                    latencies, recalls = [], []
                    for query, truth in zip(queries, exact, strict=True):
                        began = time.perf_counter()
                        found, _ = ann.query(index, query, k, search_k)
                        latencies.append(1000 * (time.perf_counter() - began))
                        recalls.append(len(set(found) & set(truth)) / k)
                    record = {
                        "items": count,
                        "dims": dims,
                        "trees": trees,
                        "search_k": search_k,
                        "build_s": build_s,
                        "file_mb": path.stat().st_size / 2**20,
                        "query_ms_p50": percentile(latencies, 50),
                        "query_ms_p95": percentile(latencies, 95),
                        "recall_at_10": float(np.mean(recalls)),
                        "exact_ms": exact_ms,
                    }
                    data.append(record)
                    rows.append(
                        [
                            f"{count:,}",
                            dims,
                            trees,
                            "trees*k" if search_k == -1 else search_k,
                            build_s,
                            record["file_mb"],
                            record["query_ms_p50"],
                            record["query_ms_p95"],
                            record["recall_at_10"],
                        ]
                    )
                index.unload()
                path.unlink()
            print(f"  annoy {count:,} x {dims} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = table(
        [
            "items",
            "dims",
            "trees",
            "search_k",
            "build s",
            "file MB",
            "query ms p50",
            "query ms p95",
            "recall@10",
        ],
        rows,
    )
    text += "\n\nExact search (numpy, one query at a time, normalised float32 matrix in memory):\n\n"
    text += table(["items", "dims", "exact ms/query", "matrix MB"], exact_rows)
    return {"annoy": data}, text


# --- 3. quality -------------------------------------------------------------------------------


def bench_quality(quick: bool) -> tuple[dict, str]:
    import ann
    import autoencoder
    import evaluate
    import img2vec

    per_class = 100 if quick else None
    rows, data = [], []
    with tempfile.TemporaryDirectory(prefix="imgsim-quality-") as tmp:
        photos = link_subset(flower_files(per_class), Path(tmp) / "flowers")
        cfg = config.Config(index_dir=Path(tmp) / "index", model=str(config.SHARED_MODEL), trees=100)
        for reduce in ("none", "pca", "autoencoder"):
            began = time.perf_counter()
            img2vec.build_index(
                photos, cfg.replace(reduce=reduce, dims=256), progress=False, log=lambda _: None
            )
            seconds = time.perf_counter() - began
            index = ann.open_index(cfg.index_dir)
            scores = evaluate.evaluate_index(index)
            full = np.load(index.version / "vectors.npy")
            reduced = np.array([index.annoy.get_item_vector(r) for r in range(len(full))])
            kept = 1.0 if reduce == "none" else autoencoder.neighbour_preservation(full, reduced)
            record = {
                "reduce": reduce,
                "dims": int(index.manifest["dims"]),
                "build_s": seconds,
                "top10_kept": kept,
                **scores,
            }
            data.append(record)
            rows.append(
                [
                    reduce,
                    record["dims"],
                    scores["p@1"],
                    scores["p@5"],
                    scores["p@10"],
                    scores["map"],
                    scores["recall@10"],
                    kept,
                    seconds,
                ]
            )
    text = table(
        ["reduce", "dims", "P@1", "P@5", "P@10", "mAP", "Annoy recall@10", "exact top-10 kept", "build s"],
        rows,
    )
    count = 500 if quick else 4317
    text += (
        f"\n\nflowers5, {count} images, EfficientNet-Lite0 (1280-d), leave-one-out, 100 trees. "
        "The first build includes embedding every image; the others reuse the vectors."
    )
    return {"quality": data}, text


# --- 4. the service ---------------------------------------------------------------------------


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


def bench_service(quick: bool) -> tuple[dict, str]:
    import img2vec

    sequential = 30 if quick else 100
    load_seconds = 10 if quick else 30
    rows, data = [], []
    bodies = [path.read_bytes() for path in flower_files(4, seed=3)]
    for label, model, weights, per_class in (
        ("efficientnet_lite0", str(config.SHARED_MODEL), "imagenet", 40),
        ("inception_v3 (random weights)", "inception_v3", "none", 8),
    ):
        with tempfile.TemporaryDirectory(prefix="imgsim-service-") as tmp:
            photos = link_subset(flower_files(per_class), Path(tmp) / "flowers")
            cfg = config.Config(index_dir=Path(tmp) / "index", model=model, weights=weights)
            img2vec.build_index(photos, cfg, progress=False, log=lambda _: None)
            port = free_port()
            env = {
                **os.environ,
                "IMGSIM_INDEX_DIR": str(cfg.index_dir),
                "IMGSIM_BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": "2",
            }
            server = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "-c",
                    "gunicorn.conf.py",
                    "--access-logfile",
                    "/dev/null",
                    "app:create_app()",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
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
                done, rate = load_test(port, bodies, clients=8, seconds=load_seconds)
                children = [
                    int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
                ]
                memory = [rss_mb(pid) for pid in children]
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=60)
            record = {
                "model": label,
                "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95),
                "p99_ms": percentile(latencies, 99),
                "rps_8_clients": rate,
                "loaded_p50_ms": percentile(done, 50),
                "loaded_p95_ms": percentile(done, 95),
                "worker_rss_mb": [m[0] for m in memory],
                "worker_pss_mb": [m[1] for m in memory],
            }
            data.append(record)
            rows.append(
                [
                    label,
                    record["p50_ms"],
                    record["p95_ms"],
                    record["p99_ms"],
                    rate,
                    record["loaded_p95_ms"],
                    " / ".join(f"{m[0]:.0f}" for m in memory),
                    " / ".join(f"{m[1]:.0f}" for m in memory),
                ]
            )
    text = table(
        [
            "model",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s (8 clients)",
            "p95 ms under load",
            "worker RSS MB",
            "worker PSS MB",
        ],
        rows,
    )
    text += (
        f"\n\ngunicorn, 2 gthread workers x 2 threads, loopback; 128x128 JPEG bodies, k=10; "
        f"{sequential} sequential requests, then 8 concurrent clients for {load_seconds} s."
    )
    return {"service": data}, text


# --- 5. live additions and deletions --------------------------------------------------------


def bench_live(quick: bool) -> tuple[dict, str]:
    """Search latency with a delta in front of Annoy; add-to-searchable time; compaction time."""
    import ann
    import app as app_module
    import img2vec
    import live

    base_n, dims, k = (25_000 if quick else 100_000), 256, 10
    rows, data = [], {"latency": []}
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-live-"))
    try:
        vectors = clustered(base_n + 10_000, dims)
        ann.build(vectors[:base_n], workdir / "index.ann", "angular", 100)
        index = ann.SearchIndex(
            workdir,
            {"metric": "angular", "model_key": "synthetic"},
            [{"id": i, "path": f"{i}.jpg"} for i in range(base_n)],
            ann.load(workdir / "index.ann", dims),
            None,
        )
        queries = vectors[np.random.default_rng(2).choice(base_n + 10_000, 200, replace=False)]
        for delta in (0, 1_000) if quick else (0, 1_000, 10_000):
            extra = vectors[base_n : base_n + delta]
            view = live.LiveView(
                list(range(base_n, base_n + delta)),
                [{"id": base_n + i, "path": f"u{i}.jpg"} for i in range(delta)],
                extra,
                frozenset(range(0, 100)),
            )  # and 100 tombstones
            latencies = []
            for query in queries:
                began = time.perf_counter()
                live.search(index, view, query, k)
                latencies.append(1000 * (time.perf_counter() - began))
            record = {
                "base": base_n,
                "delta": delta,
                "tombstones": 100,
                "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95),
            }
            data["latency"].append(record)
            rows.append([f"{base_n:,}", f"{delta:,}", 100, record["p50_ms"], record["p95_ms"]])
        index.annoy.unload()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = table(["base items", "delta items", "tombstones", "search ms p50", "search ms p95"], rows)

    with tempfile.TemporaryDirectory(prefix="imgsim-live-") as tmp:
        base = flower_files(40)
        photos = link_subset(base, Path(tmp) / "flowers")
        cfg = config.Config(
            index_dir=Path(tmp) / "index",
            model=str(config.SHARED_MODEL),
            admin_token="t",
            reload_interval=0.0,
        )
        img2vec.build_index(photos, cfg, progress=False, log=lambda _: None)
        client = app_module.create_app(cfg).test_client()
        uploads = [path for path in flower_files(None)[::97] if path not in set(base)][:4]
        client.post("/search", data=uploads[0].read_bytes(), content_type="image/jpeg")  # warm-up
        waits = []
        for path in uploads[1:]:
            began = time.perf_counter()
            reply = client.post(
                "/images",
                data={"image": (path.open("rb"), path.name)},
                headers={"Authorization": "Bearer t"},
                content_type="multipart/form-data",
            )
            new_id = reply.get_json()["id"]
            found = client.post("/search?k=1", data=path.read_bytes(), content_type="image/jpeg").get_json()
            assert found["results"][0]["id"] == new_id
            waits.append(1000 * (time.perf_counter() - began))
        began = time.perf_counter()
        report = img2vec.build_index(photos, cfg, progress=False, log=lambda _: None)
        compaction_s = time.perf_counter() - began
    data |= {"add_to_found_ms": waits, "compaction_s": compaction_s, "compaction_items": report.items}
    text += (
        f"\n\nSynthetic clustered 256-d vectors, Annoy 100 trees, 200 queries, k=10, exact search over the "
        f"delta. POST /images then a POST /search that finds it at rank 1 (EfficientNet-Lite0, in-process "
        f"Flask client): {', '.join(f'{w:.0f}' for w in waits)} ms. Compaction of a "
        f"{report.items}-image index with {len(waits)} uploads (nothing re-embedded): {compaction_s:.1f} s; "
        "at 100k items it is dominated by the Annoy build (see section 2)."
    )
    return data, text


SECTIONS = {
    "embed": bench_embed,
    "annoy": bench_annoy,
    "quality": bench_quality,
    "service": bench_service,
    "live": bench_live,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark imgsim on this machine; prints Markdown tables.")
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 5 minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections (default: all)")
    parser.add_argument("--out", help="JSON file to write (default bench/results/<time>.json)")
    parser.add_argument("--child-embed", nargs=2, metavar=("MODEL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_embed:
        print(json.dumps(embed_child(args.child_embed[0], int(args.child_embed[1]))))
        return 0
    if not (config.SHARED_MODEL.is_file() and FLOWERS.is_dir()):
        print(
            f"error: the benchmark needs the shared model and photos in {config.SHARED_DIR}", file=sys.stderr
        )
        return 2
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    report = {
        "machine": {
            "cpu": cpu_peak_gflops()[1],
            "python": platform.python_version(),
            "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        },
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    began = time.perf_counter()
    print(
        f"# imgsim benchmark{' (quick)' if args.quick else ''}\n\nMachine: {report['machine']['cpu']}, "
        f"{report['machine']['memory_gb']:.0f} GiB\n"
    )
    for name in chosen:
        section_began = time.perf_counter()
        data, text = SECTIONS[name](args.quick)
        report[name] = data
        print(f"## {name} ({time.perf_counter() - section_began:.0f} s)\n\n{text}\n", flush=True)
    report["seconds"] = time.perf_counter() - began
    out = (
        Path(args.out) if args.out else ROOT / "bench" / "results" / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"Total {report['seconds']:.0f} s. JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
