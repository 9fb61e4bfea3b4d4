"""Which segments to merge: a tiered merge policy, after Lucene's TieredMergePolicy.

Every change adds a small segment; left alone, a query would search thousands of them. Segments
are sorted into tiers by size (each tier ``per_tier`` times larger than the one below); once a
tier holds ``per_tier`` segments, they are merged into one segment of the next tier. So a segment
is rewritten about log(n) times in its life, not at every change (the cost of a change stays that
of the change, amortised), and a version has at most ``per_tier - 1`` segments per tier plus
those at the size limit. A segment whose share of deleted rows passes ``deletes_allowed`` is
rewritten without them. No merge writes a segment above ``max_items``: that bounds the memory and
time of any one merge (and of a first build, which writes segments of that size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imgsim.index.store import SegmentRef


@dataclass(frozen=True)
class MergePolicy:
    per_tier: int = 10  # segments a tier holds before they are merged (Lucene: segmentsPerTier 10)
    max_items: int = 250_000  # the largest segment a merge or a build writes
    floor_items: int = 1_000  # segments below this are all in the lowest tier
    deletes_allowed: float = 0.25  # share of deleted rows a segment may carry

    def tier(self, live: int) -> int:
        return int(math.log(max(live, self.floor_items) / self.floor_items, self.per_tier) + 1e-9)


def merges(refs: list[SegmentRef], policy: MergePolicy, force: bool = False) -> list[list[str]]:
    """The merges to run, each a list of segment names whose live rows become one new segment.

    ``force`` (img2vec.py --merge) merges down to the fewest segments the size limit allows."""
    sizes = {ref.name: ref.live for ref in refs}
    todo: list[list[str]] = []
    pending = {ref.name for ref in refs if ref.live == 0}  # emptied segments just go
    for ref in refs:
        if ref.live and (force or len(ref.deleted) > policy.deletes_allowed * ref.count):
            if force and not ref.deleted and ref.live >= policy.max_items:
                continue  # full and clean: nothing a merge could improve
            pending.add(ref.name)
    if force:
        dirty = {ref.name for ref in refs if ref.deleted}
        packed = _pack(
            sorted((n for n in pending if sizes[n]), key=sizes.__getitem__), sizes, policy.max_items
        )
        return [g for g in packed if len(g) > 1 or (g and g[0] in dirty)] + [
            [n] for n in pending if not sizes[n]
        ]
    todo += [[name] for name in sorted(pending)]  # rewritten alone, or dropped when empty
    counted = [(sizes[r.name], r.name) for r in refs if r.name not in pending and sizes[r.name]]
    merged_sizes: list[tuple[int, str]] = []
    while True:
        by_tier: dict[int, list[tuple[int, str]]] = {}
        for live, name in counted + merged_sizes:
            if live < policy.max_items // 2:  # near the limit a segment is left as it is
                by_tier.setdefault(policy.tier(live), []).append((live, name))
        full = sorted(t for t, members in by_tier.items() if len(members) >= policy.per_tier)
        if not full:
            break
        members = sorted(by_tier[full[0]])[: policy.per_tier]
        group = _fit([n for _, n in members], sizes, policy.max_items)
        if len(group) < 2:
            break
        names = set(group)
        counted = [(s, n) for s, n in counted if n not in names]
        merged_sizes = [(s, n) for s, n in merged_sizes if n not in names]
        merged_name = "+".join(group)  # a merge of merges is planned as one merge of all
        sizes[merged_name] = sum(sizes[n] for n in group)
        merged_sizes.append((sizes[merged_name], merged_name))
    todo += [_flatten(name) for _, name in merged_sizes]
    return todo


def _flatten(name: str) -> list[str]:
    return name.split("+")


def _fit(names: list[str], sizes: dict[str, int], limit: int) -> list[str]:
    """The first of ``names`` (smallest first) whose rows fit in one segment of ``limit``."""
    group, total = [], 0
    for name in names:
        if total + sizes[name] > limit:
            break
        group.append(name)
        total += sizes[name]
    return group


def _pack(names: list[str], sizes: dict[str, int], limit: int) -> list[list[str]]:
    """Names packed into as few groups of at most ``limit`` rows as a greedy pass finds."""
    groups: list[list[str]] = [[]]
    total = 0
    for name in names:
        if groups[-1] and total + sizes[name] > limit:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += sizes[name]
    return groups
