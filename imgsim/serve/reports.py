"""Reports over the whole built index: its groups of copies and its t-SNE map, each computed at
most once per version (and threshold), under a lock of its own, so no request repeats the work."""

from __future__ import annotations

import dataclasses
import threading

from imgsim.duplicates import finding, grouping
from imgsim.measure import plots
from imgsim.serve.catalogue import Catalogue
from imgsim.serve.holder import Snapshot
from imgsim.serve.refusals import ServiceError


class Reports:
    """Duplicates and the map of the collection, over the catalogue's current version."""

    def __init__(self, catalogue: Catalogue):
        self.catalogue = catalogue
        self._map_lock = threading.Lock()  # one t-SNE map at a time
        self._duplicates_lock = threading.Lock()  # one duplicates search (of an old version) at a time
        self._duplicates: dict[tuple[str, float | None], tuple[float, list[grouping.Group]]] = {}

    def duplicates(self, threshold: float | None = None) -> tuple[Snapshot, float, list[grouping.Group]]:
        """Groups of copies in the built index, minus what was deleted since: from the pairs the build
        verified, or (older versions) computed once per version and threshold, under their own lock."""
        snap, view = self.catalogue.current()
        key = (snap.index.version.name, threshold)
        with self._duplicates_lock:
            if key not in self._duplicates:
                try:
                    self._duplicates = {key: finding.find_duplicates(snap.index, threshold)}
                except ValueError as error:
                    raise ServiceError("not_calibrated", str(error)) from None
        limit, groups = self._duplicates[key]
        kept = [
            dataclasses.replace(group, members=[m for m in group.members if m.id not in view.hidden])
            for group in groups
        ]
        return snap, limit, [group for group in kept if len(group.members) > 1]

    def map_points(self) -> tuple[Snapshot, list[dict]]:
        """The built index on a t-SNE map; live additions join it at the next compaction."""
        snap, _ = self.catalogue.current()
        with self._map_lock:  # the first visit computes the t-SNE once per index version
            try:
                return snap, plots.map_points(snap.index)
            except ValueError as error:
                raise ServiceError("too_few_images", str(error)) from None
