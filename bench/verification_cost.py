"""Benchmark section 15 (verify): what checking a search's candidates costs, with and without the
first look (images/first_look.py) and the same-scene check (images/same_scene.py), side by side
in one run on one index; then POST /search through
gunicorn per kind of query, beside the decode and the network alone (issue 34's measure).

flowers5 is indexed with the defaults and the shared EfficientNet-Lite0, less 100 photos held out.
Searched as uploads, once with every candidate verified in full and once with the first look:
edited copies of 200 indexed photos (rank 1 of the original per edit kind), the 100 held-out
flowers and 100 Holidays photos (photos the collection lacks: nothing verifies, every candidate
is paid for). Printed: rank 1 per kind, and verification's milliseconds per search, p50 / p95.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.common import FLOWERS, copy_subset, free_port, load_test, percentile, post_image, table
from bench.service import bare_pass_ms, gunicorn, network_rate
from imgsim import config
from imgsim.images import edits, imaging
from imgsim.indexing import indexer
from imgsim.live import live
from imgsim.measure import scoring
from imgsim.models import embedders, runtimes
from imgsim.query import pipeline
from imgsim.search import annoy_index, verification

HOLIDAYS = config.SHARED_DIR / "datasets" / "holidays_a"
HELD_OUT = 100
LOADED = ("flowers the collection lacks", "indexed photos re-encoded")  # also under 8 clients
LOAD_SECONDS = 20.0
COLUMNS = {  # label -> (the first look, the same-scene check)
    "every candidate in full": (False, False),
    "first look": (True, False),
    "first look, same scene": (True, True),
}


def bench_verification(quick: bool) -> tuple[dict, str]:
    if not config.SHARED_MODEL.is_file() or not FLOWERS.is_dir():
        return {}, f"skipped: needs the shared model and flowers5 in {config.SHARED_DIR}"
    sample = 50 if quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-bench-verify-"))
    try:
        photos = sorted(FLOWERS.rglob("*.jpg"))
        held_out = photos[:: len(photos) // HELD_OUT][:HELD_OUT]
        kept = sorted(set(photos) - set(held_out))
        folder = copy_subset(kept, workdir / "photos")
        cfg = config.Config(model=str(config.SHARED_MODEL), index_dir=workdir / "index")
        indexer.build_index(folder, cfg, progress=False, log=lambda line: None)
        index = annoy_index.open_index(cfg.index_dir)
        embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
        lacking = {
            "flowers the collection lacks": held_out,
            "Holidays photos": sorted(HOLIDAYS.rglob("*.jpg"))[:HELD_OUT],
        }
        results: dict = {}
        for label, (first_look, same_scene) in COLUMNS.items():
            verification.FIRST_LOOK, verification.SAME_SCENE = first_look, same_scene
            began = time.perf_counter()
            found = scoring.evaluate_edits(index, embedder, sample, verify=True)
            for kind, files in lacking.items():
                found[kind] = _verify_ms(index, embedder, files)
            found["seconds"] = time.perf_counter() - began
            results[label] = found
            print(f"  verification, {label}: {found['seconds']:.0f} s", file=sys.stderr)
        service = _service(cfg.index_dir, folder, lacking, 30 if quick else 100)
    finally:
        verification.FIRST_LOOK, verification.SAME_SCENE = True, True
        shutil.rmtree(workdir, ignore_errors=True)
    text = _report(results, sample, len(index.items)) + _service_report(service)
    return results | {"service": service}, text


def _service(index_dir: Path, folder: Path, lacking: dict[str, list[Path]], count: int) -> dict:
    """POST /search through gunicorn (the defaults, 2 workers, one client), per kind of query,
    beside the decode and the network alone on the same bodies: what issue 34 holds a search to."""
    indexed = sorted(folder.rglob("*.jpg"))[::40][:count]
    bodies = {label: [path.read_bytes() for path in files[:count]] for label, files in lacking.items()}
    bodies["70 % crops of indexed photos"] = [_jpeg(edits.apply("crop_70", _open(path))) for path in indexed]
    bodies["indexed photos re-encoded"] = [_jpeg(_open(path)) for path in indexed]
    found = {}
    port = free_port()
    with gunicorn(index_dir, port, 2):
        _wait(port, bodies["indexed photos re-encoded"][0])
        for label, sent in bodies.items():
            for body in sent[:4]:  # both workers warm for this kind
                post_image(port, body)
            latencies = [post_image(port, body) for body in sent]
            decode = [_decode_ms(body) for body in sent]
            network = bare_pass_ms(index_dir, "openvino", sent[0])
            found[label] = {
                "p50_ms": percentile(latencies, 50),
                "p90_ms": percentile(latencies, 90),
                "decode_ms": percentile(decode, 50),
                "network_ms": network,
            }
        for label in LOADED:  # 8 clients at once: throughput against the network alone
            _, rate = load_test(port, bodies[label], clients=8, seconds=LOAD_SECONDS)
            alone = network_rate(index_dir, bodies[label], batch=8)
            found[label] |= {"rps_8_clients": rate, "network_img_s": alone}
    return found


def _open(path: Path) -> Image.Image:
    return imaging.open_rgb(path)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _decode_ms(body: bytes) -> float:
    began = time.perf_counter()
    imaging.decode_rgb(body, min_side=224)
    return 1000 * (time.perf_counter() - began)


def _wait(port: int, body: bytes) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            post_image(port, body)
            return
        except (OSError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _service_report(service: dict) -> str:
    rows = [
        [label, f"{s['p50_ms']:.1f} / {s['p90_ms']:.1f}", f"{s['decode_ms']:.1f}", f"{s['network_ms']:.1f}"]
        + [f"{s['p50_ms'] / (s['decode_ms'] + s['network_ms']):.1f}x"]
        for label, s in service.items()
    ]
    headers = ["query", "POST /search p50 / p90 ms", "decode ms", "network ms", "p50 / (decode + network)"]
    text = "\n\nPOST /search through gunicorn (defaults, 2 workers, one client, k=10: the last column's):\n\n"
    loaded = [
        [label, f"{s['rps_8_clients']:.1f}", f"{s['network_img_s']:.1f}"]
        + [f"{100 * s['rps_8_clients'] / s['network_img_s']:.0f} %"]
        for label, s in service.items()
        if "rps_8_clients" in s
    ]
    text_loaded = (
        f"\n\n8 clients at once for {LOAD_SECONDS:.0f} s (the clients run on the same machine), against the "
        "network alone on the same photos, 8 at a time on every core:\n\n"
    )
    loaded_headers = ["query", "searches/s, 8 clients", "network alone img/s", "share"]
    return text + table(headers, rows) + text_loaded + table(loaded_headers, loaded)


def _verify_ms(
    index: annoy_index.SearchIndex, embedder: embedders.Embedder, files: list[Path]
) -> list[float]:
    """Verification's milliseconds for each of ``files`` searched as an upload."""
    seconds = []
    for path in files:
        image = imaging.open_rgb(path, min_side=embedder.decode_side)
        found = pipeline.search_embedded(index, live.LiveView(), image, embedder.embed_images([image]), 10)
        seconds.append(1000 * found.verify_seconds)
    return seconds


def _report(results: dict, sample: int, items: int) -> str:
    labels = list(results)
    rows = [[name] + [f"{results[x]['edits'][name]['rank1']:.3f}" for x in labels] for name in edits.EDITS]
    rows.append(
        ["verification ms p50 / p95, edited copies"]
        + [f"{results[x]['verify_ms_p50']:.1f} / {results[x]['verify_ms_p95']:.1f}" for x in labels]
    )
    for lacking in ("flowers the collection lacks", "Holidays photos"):
        rows.append(
            [f"verification ms p50 / p95, {lacking}"]
            + [
                f"{percentile(results[x][lacking], 50):.1f} / {percentile(results[x][lacking], 95):.1f}"
                for x in labels
            ]
        )
    text = (
        f"Rank 1 of the original, {sample} photos x {len(edits.EDITS)} edits, {items:,} indexed "
        f"(flowers5 less {HELD_OUT} held out), and what verification costs a search:\n\n"
    )
    return text + table(["edit"] + labels, rows)
