"""Section 13 (segments): what a change costs at 100k and 1M vectors, and what queries pay.

For each size: a real index of 300 flowers (EfficientNet-Lite0, f32) gives the model, the match
labels and the calibration queries; stand-in vectors (1280-d mixtures of those real vectors, so
that they lie as embeddings do) fill it up to the size, written as segments of ``segment_items``
by a child process (its peak memory is the first build's). Then 1,000 other flowers are embedded
for real and added through the service's own add path, and a child process that has opened the
index as a worker does runs the compaction (its time, and its memory before and at peak). Queries
(stand-ins moved as an edit would move them) are searched over every segment at the tuned depths:
p50 and recall@10 against exact search over all vectors; one segment of the same vectors is the
baseline at 100k, one segment of the largest size a build writes at 1M (one segment of 1M does
not fit this machine's memory). Last, nine more small segments (as nine more compactions would
write) and the build that the merge policy then makes merge them.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, copy_subset, flower_files, percentile, rss_mb, table
from imgsim import config, durable
from imgsim.index import keypoints, recall, segments, store
from imgsim.index import vectors as vector_math
from imgsim.index.depth import TUNED
from imgsim.indexing import indexer, segment_layout
from imgsim.live import live
from imgsim.search import annoy_index, tuning

REAL, DELTA = 300, 1000


SETTINGS_FILE = "settings.json"  # in the work folder: settings beyond these, for every child process


def work_config(workdir: Path) -> config.Config:
    """The settings every process of one run uses: the defaults but f32, and the folder's own."""
    written = workdir / SETTINGS_FILE
    settings = json.loads(written.read_text()) if written.is_file() else {}
    defaults = {"model": str(config.SHARED_MODEL), "precision": "f32", "admin_token": "x" * 24}
    return config.Config(index_dir=workdir / "index", **(defaults | settings))


def _reset_peak() -> None:
    """Start this process's peak-memory count (VmHWM) afresh: imports and model loading are not
    what is measured."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    """The peak resident memory since the last _reset_peak (else since the start)."""
    status = Path("/proc/self/status").read_text().splitlines()
    found = [int(line.split()[1]) for line in status if line.startswith("VmHWM")]
    return found[0] / 1024 if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _copy_version_files(version: Path, building: Path) -> None:
    """The version's own files (the calibration, the centre or the reducer, the copies) into the
    one being built; its manifest and segment list are written anew."""
    for path in version.iterdir():
        if path.is_file() and path.name not in ("manifest.json", store.SEGMENTS_FILE):
            shutil.copy2(path, building / path.name)


def standin_child(workdir: str, count: int) -> dict:
    """Fill the real index up to ``count`` with stand-in vectors, one segment at a time (a child
    process: its peak memory is what writing the segments took)."""
    cfg = work_config(Path(workdir))
    _reset_peak()
    began = time.perf_counter()
    version = store.current_version(cfg.index_dir)
    manifest, refs = store.read_manifest(version), store.read_segments(version)
    to_index = segment_layout.load_space(cfg, version)
    live_store = live.open_store(cfg.index_dir)
    extra = count - manifest.items
    first = live_store.allocate_ids(extra, manifest.next_id)
    building = store.start_version(cfg.index_dir)
    _copy_version_files(version, building)
    for ref in refs:
        durable.link_tree(store.segment_dir(version, ref.name), store.segment_dir(building, ref.name))
    pool = _pool(version)
    annoy_s = 0.0
    for start in range(0, extra, cfg.segment_items):
        size = min(cfg.segment_items, extra - start)
        vectors = _standins(pool, size, np.random.default_rng(start))
        items = [
            store.Item(first + start + i, f"standin/{first + start + i}.jpg", 1, 1, f"s{start + i}")
            for i in range(size)
        ]
        name = segments.new_name()
        folder = store.segment_dir(building, name)
        index_vectors = to_index(vectors)
        annoy_s += segments.write(folder, items, vectors, index_vectors, cfg.metric, cfg.trees)
        keypoints.save(folder, [None] * size)
        edited = _edited(index_vectors, np.random.default_rng(start))  # queries like its own vectors
        curve = tuning.calibrate_segment(folder / segments.ANNOY_FILE, index_vectors, edited, cfg)
        segments.keep_for_exact_search(folder, index_vectors, curve.search_k)
        segments.describe(folder, size, curve.search_k, curve.to_dict())
        refs.append(store.SegmentRef(name, size))
        del vectors, index_vectors
        took = time.perf_counter() - began
        print(f"  stand-in segment {len(refs)}: {size:,} ({took:.0f} s)", file=sys.stderr, flush=True)
    store.write_segments(building, refs)
    manifest.items, manifest.next_id = count, first + extra
    largest = durable.read_json(store.segment_dir(building, refs[-1].name) / segments.SEGMENT_FILE)
    manifest.search_k = largest["search_k"]  # as a build says
    manifest.recall = recall.RecallCurve.from_dict(largest["recall"]) if largest["recall"] else None
    store.write_manifest(building, manifest)
    store.publish(cfg.index_dir, building, keep=1)
    return {"seconds": time.perf_counter() - began, "annoy_s": annoy_s, "peak_mb": _peak_mb()}


def merge_child(workdir: str, small: int, each: int) -> dict:
    """A tier merge as compactions cause it: ``small`` more segments of ``each`` stand-ins written
    (as compactions would), then the build that the policy makes merge them; its time and peak."""
    cfg = work_config(Path(workdir))
    version = store.current_version(cfg.index_dir)
    manifest, refs = store.read_manifest(version), store.read_segments(version)
    to_index = segment_layout.load_space(cfg, version)
    first = live.open_store(cfg.index_dir).allocate_ids(small * each, manifest.next_id)
    building = store.start_version(cfg.index_dir)
    _copy_version_files(version, building)
    for ref in refs:
        durable.link_tree(store.segment_dir(version, ref.name), store.segment_dir(building, ref.name))
    for n in range(small):
        vectors = _standins(_pool(version), each, np.random.default_rng(10_000 + n))
        start = first + n * each
        items = [store.Item(start + i, f"standin/{start + i}.jpg", 1, 1, f"m{i}") for i in range(each)]
        name = segments.new_name()
        folder = store.segment_dir(building, name)
        index_vectors = to_index(vectors)
        segments.write(folder, items, vectors, index_vectors, cfg.metric, cfg.trees)
        keypoints.save(folder, [None] * each)
        segments.describe(folder, each, 0)
        refs.append(store.SegmentRef(name, each))
    store.write_segments(building, refs)
    manifest.items, manifest.next_id = manifest.items + small * each, first + small * each
    store.write_manifest(building, manifest)
    store.publish(cfg.index_dir, building, keep=1)
    _reset_peak()
    began = time.perf_counter()
    lines: list[str] = []
    with AnonPeak() as anon:
        root = manifest.collection_root  # as a compaction: the delta (none) and the merge policy
        report = indexer.build_index(root, cfg, progress=False, log=lines.append, delta_only=True)
    seconds, merged = time.perf_counter() - began, sum("Merging" in line for line in lines)
    segments_after = [ref.live for ref in store.read_segments(report.version)]
    return {"merge_s": seconds, "peak_mb": anon.peak, "merged": merged, "segments": segments_after}


def _pool(version: Path) -> np.ndarray:
    """Real vectors to make stand-ins of: the real photos' and their edited copies'."""
    with np.load(version / tuning.CALIBRATION_FILE) as saved:
        return np.concatenate([store.read_vectors(version), saved["vectors"]]).astype(np.float32)


def _standins(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Stand-in embeddings that lie as real ones do: mixtures of three real vectors (random
    weights) plus a little noise, so that they share the real vectors' few directions instead of
    filling all 1,280 (random vectors do: Annoy then needs exact search to reach any recall)."""
    out = np.empty((count, pool.shape[1]), np.float32)
    for start in range(0, count, 50_000):
        size = min(50_000, count - start)
        picks = rng.integers(0, len(pool), (size, 3))
        weights = rng.dirichlet(np.ones(3), size).astype(np.float32)
        mixed = np.einsum("nk,nkd->nd", weights, pool[picks])
        noise = rng.normal(size=mixed.shape).astype(np.float32)
        out[start : start + size] = mixed + 0.05 * pool.std() * noise
    return out


def _edited(vectors: np.ndarray, rng: np.random.Generator, count: int = 250) -> np.ndarray:
    """Stand-ins for edited copies: some of the vectors moved by a quarter of their length in a
    random direction (about as far as a real photo's re-encoded or cropped copy lies from it)."""
    picked = np.asarray(vectors[rng.choice(len(vectors), min(count, len(vectors)), replace=False)])
    noise = rng.normal(size=picked.shape).astype(np.float32)
    lengths = np.linalg.norm(picked, axis=1, keepdims=True)
    noise *= 0.25 * lengths / np.linalg.norm(noise, axis=1, keepdims=True)
    return picked + noise


class AnonPeak:
    """The peak of this process's anonymous memory (RssAnon: what it allocated itself, not the
    index files it maps, which the page cache shares), sampled every 10 ms while it runs."""

    def __enter__(self) -> AnonPeak:
        import threading

        self.peak, self._stop = _anon_mb(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _anon_mb())

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def _anon_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("RssAnon")) / 1024


def compact_child(workdir: str) -> dict:
    """What a serving worker pays: open the index and the model, compact the delta, then search."""
    from imgsim.serve import service

    cfg = work_config(Path(workdir))
    svc = service.assemble(cfg)
    snap = svc.holder.get()
    snap.index.search_reduced(snap.index.stored_vector(0), 10)
    rss_before, pss_before = rss_mb(os.getpid())
    anon_before = _anon_mb()
    _reset_peak()
    began = time.perf_counter()
    published: list[float] = []

    def log(line: str) -> None:  # the additions are served from the line that says so
        if line.startswith("Compaction published"):
            published.append(time.perf_counter() - began)
        print("  " + line, file=sys.stderr)

    with AnonPeak() as anon:
        report = indexer.build_index(
            snap.index.manifest.collection_root,
            cfg,
            embedder=snap.embedder,
            progress=False,
            log=log,
            live_store=svc.live_store,
            delta_only=True,
        )
    seconds = time.perf_counter() - began
    return {
        "published_s": published[0] if published else seconds,
        "compaction_s": seconds,
        "items": report.items,
        "embedded": report.embedded,
        "rss_before_mb": rss_before,
        "pss_before_mb": pss_before,
        "peak_mb": _peak_mb(),
        "anon_before_mb": anon_before,
        "anon_peak_mb": anon.peak,
        "segments": [ref.live for ref in store.read_segments(report.version)],
    }


def query_child(workdir: str, baseline: str) -> dict:
    """Query p50 and recall@10 against exact search over the current version, and over one segment
    (``baseline``: that segment's name) as the baseline; the worker's RSS and PSS after."""
    cfg = work_config(Path(workdir))
    index = annoy_index.open_index(cfg.index_dir)
    rng = np.random.default_rng(5)
    picks = rng.choice(len(index.items), 200, replace=False)
    queries = _edited(np.stack([index.stored_vector(int(r)) for r in picks]), rng)
    truth = _exact(index, queries)
    found, times = [], []
    for query in queries:
        began = time.perf_counter()
        found.append(index.nearest_rows(query, 10)[0])
        times.append(1000 * (time.perf_counter() - began))
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    result = {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}
    result["recall"] = hits / (10 * len(truth))
    part = next(p for p in index.annoy.parts if p.ref.name == baseline)
    one = []
    for query in queries:
        began = time.perf_counter()
        part.nearest(query, 10, TUNED, index.metric, index.manifest.trees)
        one.append(1000 * (time.perf_counter() - began))
    rss, pss = rss_mb(os.getpid())
    return result | {
        "one_segment_p50_ms": percentile(one, 50),
        "one_segment_items": part.ref.live,
        "rss_mb": rss,
        "pss_mb": pss,
        "segments": len(index.annoy.parts),
    }


def _exact(index: annoy_index.SearchIndex, queries: np.ndarray) -> list[list[int]]:
    """The true 10 nearest rows of each query, segment by segment (no matrix of all in memory)."""
    best = [[] for _ in queries]
    for part in index.annoy.parts:
        vectors = np.load(part.folder / store.VECTORS_FILE, mmap_mode="r")
        for start in range(0, len(part.local), 50_000):
            local = part.local[start : start + 50_000]
            matrix = index.to_index_space(np.asarray(vectors[local]))
            norms = vector_math.row_norms(matrix)
            for q, query in enumerate(queries):
                found = vector_math.distances(matrix, query, index.metric, norms)
                top = vector_math.smallest(found, 10)
                best[q] += [(float(found[t]), int(part.start + start + t)) for t in top]
                best[q] = sorted(best[q])[:10]
    return [[row for _, row in b] for b in best]


def in_child(*args: str) -> dict:
    """A step run in a fresh process (``child`` below), for its own time and peak memory."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--child-segments", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(done.stderr[-3000:])
    if done.returncode != 0:
        raise RuntimeError(f"segments child {args[0]} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(args: list[str]) -> dict:
    kind, workdir, *rest = args
    if kind == "standin":
        return standin_child(workdir, int(rest[0]))
    if kind == "compact":
        return compact_child(workdir)
    if kind == "merge":
        return merge_child(workdir, int(rest[0]), int(rest[1]))
    return query_child(workdir, rest[0])


def _add_delta(cfg: config.Config, files: list[Path]) -> float:
    """The ``files`` embedded for real and added through the service's own add path: the seconds."""
    from imgsim.serve import service

    svc = service.assemble(cfg)
    began = time.perf_counter()
    for path in files:
        data = path.read_bytes()
        svc.ingest.add(data, svc.searching.decode(data), {})
    seconds = time.perf_counter() - began
    svc.close()
    return seconds


def fill_and_compact(count: int, workdir: Path) -> dict:
    """The real index of REAL flowers (with the work folder's settings), filled with stand-ins up
    to ``count`` by a child, DELTA other flowers added through the service and compacted by a child
    as a worker would: what each step measured, and the largest segment after it (the baseline)."""
    cfg = work_config(workdir)
    files = flower_files(None)
    photos = copy_subset(files[:REAL], workdir / "photos")
    indexer.build_index(photos, cfg, progress=False, log=lambda _: None)
    standin = in_child("standin", str(workdir), str(count))
    add_s = _add_delta(cfg, files[REAL : REAL + DELTA])
    before = store.read_segments(store.current_version(cfg.index_dir))
    compaction = in_child("compact", str(workdir))
    largest = max(store.read_segments(store.current_version(cfg.index_dir)), key=lambda r: r.live).name
    return {
        "standin": standin,
        "add_s": add_s,
        "segments_before": len(before),
        "compaction": compaction,
        "largest": largest,
    }


def _one_size(count: int, workdir: Path) -> dict:
    found = fill_and_compact(count, workdir)
    queries = in_child("query", str(workdir), found.pop("largest"))
    merge = in_child("merge", str(workdir), "9", str(DELTA))  # nine more compactions' worth, then the merge
    return {"items": count, **found, "queries": queries, "merge": merge}


def bench_segments(quick: bool) -> tuple[dict, str]:
    sizes = (100_000,) if quick else (100_000, 1_000_000)
    data, rows, query_rows = [], [], []
    for count in sizes:
        workdir = Path(tempfile.mkdtemp(prefix="imgsim-segments-"))
        try:
            found = _one_size(count, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        data.append(found)
        s, c, q, m = found["standin"], found["compaction"], found["queries"], found["merge"]
        rows.append(
            [
                f"{count:,}",
                s["seconds"],
                s["peak_mb"],
                DELTA,
                c["published_s"],
                c["compaction_s"],
                c["anon_before_mb"],
                c["anon_peak_mb"],
                c["peak_mb"],
                len(c["segments"]),
                m["merge_s"],
                m["peak_mb"],
                len(m["segments"]),
            ]
        )
        one = f"{q['one_segment_items']:,}"
        query_rows.append(
            [
                f"{count:,}",
                q["segments"],
                q["recall"],
                q["p50_ms"],
                q["p95_ms"],
                one,
                q["one_segment_p50_ms"],
                q["rss_mb"],
                q["pss_mb"],
            ]
        )
        print(f"  segments {count:,} done", file=sys.stderr, flush=True)
    text = table(
        [
            "vectors",
            "first build s",
            "first build peak MB",
            "added",
            "compaction published s",
            "with its copies checked s",
            "worker anon MB before",
            "anon peak MB",
            "RSS peak MB (with mapped files)",
            "segments after",
            "tier merge s",
            "merge anon peak MB",
            "segments after merge",
        ],
        rows,
    )
    text += "\n\n" + table(
        [
            "vectors",
            "segments",
            "recall@10",
            "query p50 ms",
            "p95 ms",
            "one segment of",
            "its p50 ms",
            "worker RSS MB",
            "PSS MB",
        ],
        query_rows,
    )
    return {"segments": data}, text
