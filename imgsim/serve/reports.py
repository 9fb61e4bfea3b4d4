"""Reports over the whole built index: its groups of copies and its t-SNE map, each computed at
most once per version (the groups once per effective limit, a few kept), under a lock of its own
that a request waits on for BUSY_S at most: then it is refused (503, try again), so that requests
never pile up behind one another in the worker's threads."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imgsim.duplicates import copy_pairs, finding, grouping, keeper
from imgsim.duplicates.decisions import Decision
from imgsim.measure import plots
from imgsim.serve.catalogue import Catalogue
from imgsim.serve.holder import Snapshot
from imgsim.serve.refusals import ServiceError

BUSY_S = 2.0  # the longest a request waits for another one computing the same report
KEPT_LIMITS = 8  # groups kept per version: one per distinct effective limit and decisions made


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

    def __init__(self, catalogue: Catalogue, decisions: Callable[[], list[Decision]] = list):
        self.catalogue = catalogue
        self.decisions = decisions  # the decisions in force, read per request (a few rows)
        self._map_lock = threading.Lock()  # one t-SNE map at a time
        self._duplicates_lock = threading.Lock()
        self._stored: tuple[tuple, finding.Stored] | None = None  # one version's pairs, read once
        # the undecided groups, by effective limit and the decisions made
        self._groups: OrderedDict[tuple, list[grouping.Group]] = OrderedDict()

    def duplicates(
        self, threshold: float | None = None, state: str = "open"
    ) -> tuple[Snapshot, float, list[grouping.Group]]:
        """Groups of copies in the built index, minus what was deleted since, from the pairs the
        build verified: those ``state`` asks for (open: nobody decided them; resolved: one per
        decision; all). The undecided groups for one effective limit and set of decisions are
        computed once per version; what was deleted since is taken out per request."""
        snap, view = self.catalogue.current()
        # a compaction writes its additions' copies into the version it published, just after
        version = (snap.index.version.name, copy_pairs.written_at(snap.index.version))
        decisions = self.decisions()
        with _held(self._duplicates_lock, "this index's duplicates"):
            if self._stored is None or self._stored[0] != version:
                try:
                    self._stored = (version, finding.stored_pairs(snap.index))
                except ValueError as error:
                    raise ServiceError("not_calibrated", str(error)) from None
                self._groups.clear()
            stored = self._stored[1]
            limit = finding.effective_limit(stored, threshold)
            key = (limit, tuple((d.id, d.state) for d in decisions))
            if key not in self._groups:
                rules = keeper.of(self.catalogue.cfg)
                self._groups[key] = finding.undecided_groups(snap.index, stored, limit, decisions, rules)
                while len(self._groups) > KEPT_LIMITS:
                    self._groups.popitem(last=False)
            undecided = self._groups[key]
        return snap, limit, finding.listed(snap.index, undecided, decisions, view.hidden, state)

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
