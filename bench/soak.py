"""Soak a running imgsim service: N clients for T minutes, then check that nothing was lost.

    python -m bench.soak http://127.0.0.1:8080 --images ../shared/datasets/flowers5 \\
        --clients 8 --minutes 10 --token "$IMGSIM_ADMIN_TOKEN"

Each client loops (until the time is up, or --max-requests) over a seeded random mix of searches
by upload, searches by id, thumbnails and, with --token, additions of new images and deletions of
images it added. Every 15 s a line gives the requests so far, errors by status, latency
percentiles and each gunicorn worker's memory (RSS/PSS, read from /proc when the service runs on
this machine). At the end every acknowledged addition must serve its own bytes, every deletion
must be gone, and no id may have been acknowledged twice. Exit status 1 on any error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from bench.common import percentile, rss_mb, table

MIX = {"search_upload": 4, "search_id": 4, "thumbnail": 3, "add": 1, "delete": 1}
TIMEOUT = 120  # seconds per request; a compaction can hold one for a while


@dataclass
class Ledger:
    """What the clients did and were told, shared under one lock."""

    base_ids: list[int] = field(default_factory=list)
    added: dict[int, str] = field(default_factory=dict)  # acknowledged id -> sha1 of the bytes sent
    deleted: set[int] = field(default_factory=set)
    duplicates: list[int] = field(default_factory=list)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)  # (when, action, ms)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, action: str, began: float, status: int | str, expected: tuple[int, ...]) -> None:
        with self.lock:
            self.latencies.append((time.monotonic(), action, (time.monotonic() - began) * 1000))
            self.statuses[status] += 1
            if status not in expected:
                self.errors[f"{action} {status}"] += 1

    def note_error(self, text: str) -> None:
        with self.lock:
            if len(self.error_samples) < 20:
                self.error_samples.append(text)


def image_files(folder: str) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def unique_jpeg(source: Path, rng: random.Random) -> bytes:
    """A small JPEG of ``source`` with a random block on it, so that every addition is new bytes."""
    with Image.open(source) as image:
        picture = image.convert("RGB")
    picture.thumbnail((320, 320))
    x, y = rng.randrange(picture.width - 8), rng.randrange(picture.height - 8)
    picture.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 8, y + 8))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=rng.randint(70, 95))
    return buffer.getvalue()


def client(number: int, args: argparse.Namespace, files: list[Path], ledger: Ledger, deadline: float) -> None:
    rng = random.Random(args.seed * 1000 + number)
    session = requests.Session()
    admin = {"Authorization": f"Bearer {args.token}", "Accept": "application/json"}
    actions = [a for a in MIX if args.token or a not in ("add", "delete")]
    weights = [MIX[a] for a in actions]
    for _ in range(args.max_requests):
        if time.monotonic() >= deadline:
            return
        action = rng.choices(actions, weights)[0]
        began = time.monotonic()
        try:
            if action == "search_upload":
                body = unique_jpeg(rng.choice(files), rng)
                reply = session.post(
                    f"{args.url}/search?k=10",
                    data=body,
                    headers={"Content-Type": "image/jpeg"},
                    timeout=TIMEOUT,
                )
                ledger.record(action, began, reply.status_code, (200,))
            elif action == "search_id":
                item = rng.choice(ledger.base_ids)
                reply = session.get(
                    f"{args.url}/search?id={item}&k=10",
                    headers={"Accept": "application/json"},
                    timeout=TIMEOUT,
                )
                ledger.record(action, began, reply.status_code, (200,))
            elif action == "thumbnail":
                reply = session.get(f"{args.url}/thumbs/{rng.choice(ledger.base_ids)}", timeout=TIMEOUT)
                ledger.record(action, began, reply.status_code, (200,))
            elif action == "add":
                body = unique_jpeg(rng.choice(files), rng)
                reply = session.post(
                    f"{args.url}/images",
                    files={"image": ("soak.jpg", body, "image/jpeg")},
                    headers=admin,
                    timeout=TIMEOUT,
                )
                ledger.record(action, began, reply.status_code, (201,))
                if reply.status_code == 201:
                    new_id = reply.json()["id"]
                    with ledger.lock:
                        if new_id in ledger.added or new_id in ledger.base_ids:
                            ledger.duplicates.append(new_id)
                        ledger.added[new_id] = hashlib.sha1(body).hexdigest()
            else:  # delete one of the images the soak added, claimed so that no other client tries it
                with ledger.lock:
                    alive = sorted(set(ledger.added) - ledger.deleted)
                    victim = rng.choice(alive) if alive else None
                    if victim is not None:
                        ledger.deleted.add(victim)
                if victim is None:
                    continue
                reply = session.delete(f"{args.url}/images/{victim}", headers=admin, timeout=TIMEOUT)
                ledger.record(action, began, reply.status_code, (200,))
            if reply.status_code >= 400:
                ledger.note_error(f"{action}: {reply.status_code} {reply.text[:200]}")
        except requests.RequestException as error:
            ledger.record(action, began, type(error).__name__, ())
            ledger.note_error(f"{action}: {error}")


def gunicorn_workers(master: int | None = None) -> dict[int, str]:
    """Pids of gunicorn workers on this machine (processes named gunicorn whose parent is one too),
    or the children of one master, whatever their name (``imgsim serve`` runs gunicorn in-process;
    two services soaked side by side)."""

    def command(pid: str) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    workers = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (master is not None or "gunicorn" in command(entry.name)):
            try:
                parent = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if int(parent) == master or (master is None and "gunicorn" in command(parent)):
                workers[int(entry.name)] = command(entry.name)
    return workers


def anonymous_pss_mb(pid: int) -> float:
    """The heap's share of PSS (Pss_Anon): what glibc and Python hold, apart from mapped files."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_line(master: int | None = None) -> tuple[str, dict[int, tuple[float, float]]]:
    sample, anonymous = {}, {}
    for pid in sorted(gunicorn_workers(master)):
        try:
            sample[pid] = rss_mb(pid)
            anonymous[pid] = anonymous_pss_mb(pid)
        except (OSError, StopIteration):
            continue
    text = (
        " ".join(f"{pid}:{rss:.0f}/{pss:.0f}/{anonymous[pid]:.0f}" for pid, (rss, pss) in sample.items())
        or "no local workers"
    )
    return text, sample


def pss_after_half(memory: list, pid: int, window_s: float = 300.0) -> tuple[float, float]:
    """A worker's PSS level at the half of the run (the median of the samples within a minute of
    it) and how far the level strayed from it afterwards: the largest difference of any
    ``window_s`` window's median, as a share. Medians, so that a compaction's transient working
    memory (seconds) does not count as a level; the peaks are reported apart (``rss_max``)."""
    half = memory[-1][0] / 2
    samples = [(t, s[pid][1]) for t, s in memory if pid in s]
    around = [pss for t, pss in samples if abs(t - half) <= 60]
    if not around:
        return float("nan"), float("nan")
    level = float(np.median(around))
    end = memory[-1][0]
    count = max(1, round((end - half) / window_s))  # windows tiling the second half evenly
    windows: dict[int, list[float]] = {}
    for t, pss in samples:
        if t >= half:
            windows.setdefault(min(count - 1, int((t - half) / (end - half) * count)), []).append(pss)
    drift = max((abs(float(np.median(w)) - level) for w in windows.values()), default=0.0)
    return level, drift / level


def report(
    ledger: Ledger, began: float, done: threading.Event, out, memory: list, master: int | None
) -> None:
    """Every 15 s: requests, errors by status, latency of the last 15 s, worker memory."""
    seen = 0
    while not done.wait(15):
        with ledger.lock:
            window = [ms for _, _, ms in ledger.latencies[seen:]]
            seen = len(ledger.latencies)
            errors = dict(ledger.errors)
        text, sample = memory_line(master)
        memory.append((time.monotonic() - began, sample))
        p50, p95, p99 = (percentile(window, q) for q in (50, 95, 99))
        print(
            f"{time.monotonic() - began:5.0f} s  {seen:6d} requests  {len(window) / 15:5.1f}/s  "
            f"p50/95/99 {p50:.0f}/{p95:.0f}/{p99:.0f} ms  errors {errors or 0}  "
            f"worker RSS/PSS/anon PSS MB {text}",
            file=out,
            flush=True,
        )


def verify(args: argparse.Namespace, ledger: Ledger) -> dict:
    """Every acknowledged addition serves its own bytes; every deletion is gone (404)."""
    session, wrong, still_there = requests.Session(), [], []
    for item, sha1 in sorted(ledger.added.items()):
        reply = session.get(f"{args.url}/images/{item}", timeout=TIMEOUT)
        if item in ledger.deleted:
            if reply.status_code != 404:
                still_there.append(item)
        elif reply.status_code != 200 or hashlib.sha1(reply.content).hexdigest() != sha1:
            wrong.append(item)
    return {
        "acknowledged_additions": len(ledger.added),
        "acknowledged_deletions": len(ledger.deleted),
        "lost_or_wrong": wrong,
        "deleted_but_served": still_there,
        "duplicate_ids": ledger.duplicates,
    }


def base_ids(args: argparse.Namespace) -> list[int]:
    """Ids of the built index to search and fetch: the first page of results for a few uploads."""
    ids: set[int] = set()
    files = image_files(args.images)
    for path in files[:: max(1, len(files) // 20)]:
        body = unique_jpeg(path, random.Random(0))
        reply = requests.post(
            f"{args.url}/search?k=50", data=body, headers={"Content-Type": "image/jpeg"}, timeout=TIMEOUT
        )
        reply.raise_for_status()
        ids.update(hit["id"] for hit in reply.json()["results"] if "uploads/" not in hit["path"])
    return sorted(ids)


def worker_memory(memory: list, pid: int) -> dict:
    """One worker's memory over the run (MB): first, last, largest and the level after the half."""
    first, last = memory[0][1][pid], memory[-1][1].get(pid, (0, 0))
    level, drift = pss_after_half(memory, pid)
    return {
        "rss_first": round(first[0]),
        "rss_last": round(last[0]),
        "pss_first": round(first[1]),
        "pss_last": round(last[1]),
        "rss_max": round(max(s.get(pid, (0, 0))[0] for _, s in memory)),
        "pss_half": round(level),
        "pss_drift_after_half": round(drift, 3),
    }


def summary(ledger: Ledger, checks: dict, memory: list, seconds: float) -> dict:
    by_action = {}
    for action in MIX:
        values = [ms for _, a, ms in ledger.latencies if a == action]
        if values:
            by_action[action] = {
                "requests": len(values),
                **{f"p{q}_ms": round(percentile(values, q), 1) for q in (50, 95, 99)},
            }
    everything = [ms for _, _, ms in ledger.latencies]
    first, last = (memory[0][1], memory[-1][1]) if memory else ({}, {})
    return {
        "seconds": round(seconds, 1),
        "requests": len(everything),
        "requests_per_s": round(len(everything) / seconds, 2) if seconds else 0,
        "statuses": {str(k): v for k, v in sorted(ledger.statuses.items(), key=str)},
        "errors": dict(ledger.errors),
        "error_samples": ledger.error_samples,
        "latency_ms": {f"p{q}": round(percentile(everything, q), 1) for q in (50, 95, 99)},
        "by_action": by_action,
        "worker_memory_mb": {str(pid): worker_memory(memory, pid) for pid in first},
        "workers_replaced": sorted(set(last) ^ set(first)),
        **checks,
    }


def print_summary(result: dict, out) -> None:
    rows = [[a, v["requests"], v["p50_ms"], v["p95_ms"], v["p99_ms"]] for a, v in result["by_action"].items()]
    rows.append(["all", result["requests"], *result["latency_ms"].values()])
    print(table(["action", "requests", "p50 ms", "p95 ms", "p99 ms"], rows), file=out)
    memory = [
        [
            pid,
            m["rss_first"],
            m["rss_last"],
            m["rss_max"],
            m["pss_first"],
            m["pss_half"],
            m["pss_last"],
            f"{m['pss_drift_after_half']:.1%}",
        ]
        for pid, m in result["worker_memory_mb"].items()
    ]
    if memory:
        headers = ["worker", "RSS first", "RSS last", "RSS max", "PSS first", "PSS half", "PSS last", "drift"]
        print(table(headers, memory), file=out)
    print(f"statuses {result['statuses']}  errors {result['errors'] or 0}", file=out)
    print(
        f"additions {result['acknowledged_additions']}, deletions {result['acknowledged_deletions']}, "
        f"lost or wrong {len(result['lost_or_wrong'])}, "
        f"deleted but served {len(result['deleted_but_served'])}, "
        f"duplicate ids {len(result['duplicate_ids'])}, workers replaced {len(result['workers_replaced'])}",
        file=out,
    )
    for sample in result["error_samples"]:
        print("  " + sample, file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("url", help="base URL of the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--images", required=True, help="folder of JPEG/PNG images to upload (recursive)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default %(default)s)")
    parser.add_argument("--minutes", type=float, default=10, help="how long (default %(default)s)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="per client, at most")
    parser.add_argument("--token", default="", help="admin token: also add and delete images")
    parser.add_argument("--seed", type=int, default=0, help="seed of every client's choices")
    parser.add_argument("--master", type=int, help="watch only this gunicorn master's workers (default: all)")
    parser.add_argument("--json", action="store_true", help="print only the result, as JSON, on stdout")
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    files = image_files(args.images)
    if not files:
        parser.error(f"no JPEG or PNG files under {args.images}")
    out = sys.stderr if args.json else sys.stdout
    ledger = Ledger(base_ids=base_ids(args))
    if not ledger.base_ids:
        parser.error("the service's index has no images to search by id")
    began = time.monotonic()
    deadline = began + args.minutes * 60
    done, memory = threading.Event(), [(0.0, memory_line(args.master)[1])]
    print(f"soak: {args.clients} clients for {args.minutes:g} min against {args.url}", file=out, flush=True)
    watching = (ledger, began, done, out, memory, args.master)
    reporter = threading.Thread(target=report, args=watching, daemon=True)
    reporter.start()
    clients = [
        threading.Thread(target=client, args=(n, args, files, ledger, deadline)) for n in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    seconds = time.monotonic() - began
    done.set()
    memory.append((seconds, memory_line(args.master)[1]))
    result = summary(ledger, verify(args, ledger), memory, seconds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_summary(result, out)
    failed = (
        result["errors"] or result["lost_or_wrong"] or result["deleted_but_served"] or result["duplicate_ids"]
    )
    return 1 if failed or result["workers_replaced"] else 0


if __name__ == "__main__":
    sys.exit(main())
