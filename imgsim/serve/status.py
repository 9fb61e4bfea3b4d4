"""How a worker stands: whether it serves an index (/healthz, for load balancers) and what it
serves, since when, and how many requests it answered (/stats)."""

from __future__ import annotations

import os
import time
from collections import Counter

from imgsim.serve.compaction import Compactor
from imgsim.serve.holder import IndexHolder


class Status:
    """Health and statistics of one worker: its holder, its compactor and its request counts."""

    def __init__(self, holder: IndexHolder, compactor: Compactor | None, counts: Counter[str]):
        self.holder, self.compactor, self.counts = holder, compactor, counts
        self.started = time.time()

    def health(self) -> dict:
        """``status`` "ok" while an index is loaded, else "unavailable" with the reason."""
        snap = self.holder.get()
        if snap is None:
            return {"status": "unavailable", "reason": self.holder.load_error}
        body: dict = {"status": "ok", "version": snap.index.version.name, "items": len(snap.index.items)}
        if self.compactor is not None and self.compactor.failing:  # it serves, but its delta grows
            body["compaction"] = f"failing ({self.compactor.failures} in a row)"
        if self.holder.load_error:  # a newer version was refused (a corrupt file): this one serves
            body["refused"] = self.holder.load_error
        return body

    def stats(self) -> dict:
        snap = self.holder.get()
        index = None
        if snap is not None:
            index = snap.index.manifest.to_dict() | {"version": snap.index.version.name}
            index["segments"] = snap.index.segments()
        return {
            "worker_pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "requests": dict(self.counts),
            "index": index,
            "query_precision": None if snap is None else snap.embedder.precision,  # may be below the index's
            "load_error": self.holder.load_error,
        }
