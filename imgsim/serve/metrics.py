"""Prometheus metrics for GET /metrics, from prometheus_client.

Under gunicorn every worker is a process of its own: gunicorn.conf.py points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, each worker writes its
values there, and a scrape (answered by any one worker) adds up all of them. Without that variable
(the development server, the tests) the process's own registry is used.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# Seconds: a cached thumbnail takes ~1 ms, a search by upload 50-500 ms, a compaction minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("imgsim_requests", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("imgsim_request_seconds", "Time to answer a request", ["route"], buckets=BUCKETS)
STAGES = Histogram(
    "imgsim_stage_seconds",
    "Time in each stage of a search (decode, embed, search)",
    ["stage"],
    buckets=BUCKETS,
)
QUERY_BATCH = Histogram(
    "imgsim_query_batch_images", "Queries embedded together in one forward pass", buckets=(1, 2, 4, 8, 16, 32)
)
COMPACTIONS = Counter("imgsim_compactions", "Background rebuilds of the index, by outcome", ["outcome"])
COMPACTION_FAILING = Gauge(
    "imgsim_compaction_failures",
    "Compactions in a row that failed in this worker (0: compacting works)",
    multiprocess_mode="livemax",
)
ITEMS = Gauge("imgsim_index_items", "Images the service answers from", multiprocess_mode="livemostrecent")
DELTA = Gauge(
    "imgsim_live_delta", "Additions and deletions not yet compacted", multiprocess_mode="livemostrecent"
)
# An "info" metric (value 1, the facts in its labels); prometheus_client's Info has no multiprocess mode.
INDEX_INFO = Gauge(
    "imgsim_index_info",
    "The model and index version being served",
    ["model", "version"],
    multiprocess_mode="livemostrecent",
)
_shown: dict[str, tuple[str, str]] = {}


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a stage of a search into imgsim_stage_seconds."""
    began = time.perf_counter()
    try:
        yield
    finally:
        STAGES.labels(name).observe(time.perf_counter() - began)


def query_batch(size: int) -> None:
    QUERY_BATCH.observe(size)


def request_done(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


def index_state(model: str, version: str, items: int, delta: int) -> None:
    """What a scrape reports about the index: set just before the metrics are written out."""
    previous = _shown.get("index")
    if previous is not None and previous != (model, version):
        INDEX_INFO.labels(*previous).set(0)
    INDEX_INFO.labels(model, version).set(1)
    _shown["index"] = (model, version)
    ITEMS.set(items)
    DELTA.set(delta)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, summed over all workers under gunicorn."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: drop the live gauges of a worker that is gone."""
    multiprocess.mark_process_dead(pid)
