"""Groups of copies in a collection: the same file twice, and re-saved, resized or framed copies.

Exact copies share a content hash. Near copies lie within the index version's duplicate distance,
which each build calibrates on its own photos (matching.py): one k-nearest-neighbour query per
item and a union-find over the pairs under it, so the cost grows linearly with the collection.
Each group suggests the copy to keep (keeper_key: the most pixels, then a colour file over a
one-channel one, then the oldest file, then the lowest id) and says why its members were grouped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim.images import imaging
from imgsim.index import matching, store

NEIGHBOURS = 10  # per item: more copies of one photo than this are still joined through each other


@dataclass
class Copy:
    id: int
    path: str
    pixels: int  # width x height, read from the file's header; 0 if it cannot be read
    mtime_ns: int
    what: str = ""  # how it differs from the copy to keep (verified copies: copies.py)
    match: dict | None = None  # its verified match with the copy to keep: region, coverage, turn, scale


@dataclass
class Group:
    kind: str  # "exact": the same bytes; "near": within the duplicate distance
    keep: int  # the id of the copy to keep
    reason: str
    members: list[Copy]
    distance: float  # the largest distance that joined two members (0 for exact copies)


class _Sets:
    """Union-find over row numbers."""

    def __init__(self, count: int):
        self.parent = list(range(count))

    def find(self, row: int) -> int:
        while self.parent[row] != row:
            self.parent[row] = self.parent[self.parent[row]]
            row = self.parent[row]
        return row

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _pixels(path: Path) -> int:
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except (OSError, ValueError):
        return 0


def one_channel(path: Path) -> bool:
    """Whether a file holds one channel (grayscale): of two copies as large, the colour file is kept."""
    try:
        with Image.open(path) as image:
            return image.mode in imaging.ONE_CHANNEL_MODES
    except (OSError, ValueError):
        return False


def keeper_key(copy: Copy, root: Path) -> tuple:
    """The order in which a group's copy to keep is chosen: the most pixels, then a colour file
    over a one-channel one, then the oldest, then the lowest id."""
    return (-copy.pixels, one_channel(root / copy.path), copy.mtime_ns, copy.id)


def threshold_of(thresholds: dict, given: float | None = None) -> float:
    """The distance under which two photos are copies: ``given``, else the version's calibrated one."""
    if given is not None:
        return given
    calibrated = matching.Thresholds.from_dict(thresholds)
    if calibrated is None:
        raise ValueError(
            "this index was built before duplicate distances were calibrated: rebuild it with "
            "img2vec.py, or give a threshold"
        )
    return calibrated.duplicate


def find_groups(
    items: list[store.Item],
    neighbours: Callable[[int], tuple[list[int], list[float]]],
    threshold: float,
    root: Path,
    hidden: Iterable[int] = (),
    progress: Callable[[list[int]], Iterable[int]] = lambda rows: rows,
    distance: Callable[[int, int], float] | None = None,
) -> list[Group]:
    """The groups of exact and near copies among ``items`` (``hidden`` ids left out).

    ``neighbours(row)`` gives the rows and distances of a row's nearest items (itself among
    them), at least NEIGHBOURS + 1; ``progress`` wraps the loop over rows (a progress bar). With
    ``distance(row, row)``, two groups merge only if every pair across them is within the
    threshold (complete linkage): otherwise a chain of similar photos, each close to the next,
    would end up as one group of "copies" of photos that are not copies of each other.
    """
    gone = set(hidden)
    rows = [row for row, item in enumerate(items) if item.id not in gone]
    sets, joined = _Sets(len(items)), np.zeros(len(items), np.float32)
    members = {row: [row] for row in rows}
    by_hash: dict[str, int] = {}
    pairs = []
    for row in progress(rows):
        if items[row].sha1 in by_hash:
            _merge(sets, members, row, by_hash[items[row].sha1])
        by_hash.setdefault(items[row].sha1, row)
        for other, found in zip(*neighbours(row), strict=True):
            if other != row and found <= threshold and items[other].id not in gone:
                pairs.append((found, row, other))
    for found, row, other in sorted(pairs):
        a, b = sets.find(row), sets.find(other)
        close = distance is None or all(distance(x, y) <= threshold for x in members[a] for y in members[b])
        if a != b and close:
            _merge(sets, members, a, b)
            joined[row] = max(joined[row], found)
    groups = [_group(items, group, joined, threshold, root) for group in members.values() if len(group) > 1]
    return sorted(groups, key=lambda g: (g.kind != "exact", -len(g.members), g.keep))


def _merge(sets: _Sets, members: dict[int, list[int]], a: int, b: int) -> None:
    a, b = sets.find(a), sets.find(b)
    if a != b:
        sets.join(a, b)
        members[b] = members.pop(b) + members.pop(a)


def _group(
    items: list[store.Item], rows: list[int], joined: np.ndarray, threshold: float, root: Path
) -> Group:
    chosen = [items[row] for row in rows]
    copies = [Copy(i.id, i.path, _pixels(root / i.path), i.mtime_ns) for i in chosen]
    keep = min(copies, key=lambda c: keeper_key(c, root))
    if len({item.sha1 for item in chosen}) == 1:
        return Group("exact", keep.id, "the same file content (SHA-1)", copies, 0.0)
    distance = float(max(joined[row] for row in rows))
    reason = f"within distance {threshold:.4f} of each other: as close as a re-saved or framed copy"
    return Group("near", keep.id, reason, copies, round(distance, 6))
