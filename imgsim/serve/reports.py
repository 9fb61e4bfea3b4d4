"""Reports over the whole built index: its groups of copies and its t-SNE map, each computed at
most once per version (the groups once per effective limit, a few kept), under a lock of its own
that a request waits on for BUSY_S at most: then it is refused (503, try again), so that requests
never pile up behind one another in the worker's threads."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from imgsim.duplicates import finding, grouping
from imgsim.measure import plots
from imgsim.serve.catalogue import Catalogue
from imgsim.serve.holder import Snapshot
from imgsim.serve.refusals import ServiceError

BUSY_S = 2.0  # the longest a request waits for another one computing the same report
KEPT_LIMITS = 8  # groups kept per version: one per distinct effective limit asked for


@contextmanager
def _held(lock: threading.Lock, what: str) -> Iterator[None]:
    if not lock.acquire(timeout=BUSY_S):
        raise ServiceError("busy", f"another request is computing {what}: try again in a few seconds")
    try:
        yield
    finally:
        lock.release()


class Reports:
    """Duplicates and the map of the collection, over the catalogue's current version."""

    def __init__(self, catalogue: Catalogue):
        self.catalogue = catalogue
        self._map_lock = threading.Lock()  # one t-SNE map at a time
        self._duplicates_lock = threading.Lock()
        self._stored: tuple[str, finding.Stored] | None = None  # one version's pairs, read once
        self._groups: OrderedDict[float, list[grouping.Group]] = OrderedDict()  # by effective limit

    def duplicates(self, threshold: float | None = None) -> tuple[Snapshot, float, list[grouping.Group]]:
        """Groups of copies in the built index, minus what was deleted since, from the pairs the
        build verified; the answer for one effective limit is computed once per version."""
        snap, view = self.catalogue.current()
        version = snap.index.version.name
        with _held(self._duplicates_lock, "this index's duplicates"):
            if self._stored is None or self._stored[0] != version:
                try:
                    self._stored = (version, finding.stored_pairs(snap.index))
                except ValueError as error:
                    raise ServiceError("not_calibrated", str(error)) from None
                self._groups.clear()
            stored = self._stored[1]
            limit = finding.effective_limit(stored, threshold)
            if limit not in self._groups:
                self._groups[limit] = finding.groups_at(snap.index, stored, limit)
                while len(self._groups) > KEPT_LIMITS:
                    self._groups.popitem(last=False)
            groups = self._groups[limit]
        kept = [
            dataclasses.replace(group, members=[m for m in group.members if m.id not in view.hidden])
            for group in groups
        ]
        return snap, limit, [group for group in kept if len(group.members) > 1]

    def map_points(self) -> tuple[Snapshot, list[dict]]:
        """The built index on a t-SNE map, without what was deleted since; additions join it at the
        next build (a compaction carries the map it had)."""
        snap, view = self.catalogue.current()
        with _held(self._map_lock, "the map"):  # the first visit computes the t-SNE once per version
            try:
                points = plots.map_points(snap.index)
            except ValueError as error:
                raise ServiceError("too_few_images", str(error)) from None
        indexed = snap.index.rows_by_id
        return snap, [p for p in points if p["id"] in indexed and p["id"] not in view.hidden]
