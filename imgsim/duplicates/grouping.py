"""Groups of copies in a collection: the same file twice, and re-saved, resized or framed copies.

A version's verified pairs (copy_pairs.py) make its groups (``from_pairs``): only verified pairs
and files with the same bytes join one, so a chain of look-alike photos never becomes a group, and
each copy says what it is against the copy to keep (``what_it_is``). A union-find over the stored
pairs: a request costs one pass over them, whatever the threshold asked for.

Each group suggests the copy to keep (keeper.py: by the rules of IMGSIM_KEEPER_RULES, the most
pixels, then the uncropped, colour, better file and oldest by default) and says which rule chose it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from imgsim.duplicates import keeper, pair_evidence
from imgsim.duplicates.copy_pairs import CopyMatch, Pair
from imgsim.duplicates.decisions import Decided, Decision, Member, covered_rows, rows_by_sha1
from imgsim.index import store

NEIGHBOURS = 10  # per item: more copies of one photo than this are still joined through each other


@dataclass
class Copy:
    id: int
    path: str
    pixels: int  # width x height, read from the file's header; 0 if it cannot be read
    mtime_ns: int
    what: str = ""  # how it differs from the copy to keep (verified copies: what_it_is)
    match: CopyMatch | None = None  # its verified match with the copy to keep: region, coverage, turn, scale


@dataclass
class Group:
    kind: str  # "exact": the same bytes; "near": a verified copy; "similar": shots of one scene
    keep: int  # the id of the copy to keep
    reason: str
    members: list[Copy]
    distance: float  # the largest distance that joined two members (0 for exact copies)
    why_kept: str = ""  # the rule (keeper.py) that chose the copy to keep over the next one
    state: str = "open"  # "open": nobody decided it yet; "resolved": a decision covers it
    decision: Decision | None = None  # the decision a resolved group shows

    def to_dict(self) -> dict:
        """As /duplicates and ``imgsim duplicates --json`` answer: each copy's match as stored."""
        data = asdict(self) | {"decision": self.decision.to_dict() if self.decision is not None else None}
        for member, copy in zip(data["members"], self.members, strict=True):
            member["match"] = copy.match.to_dict() if copy.match is not None else None
        return data


class _Sets:
    """Union-find over row numbers."""

    def __init__(self, count: int):
        self.parent = list(range(count))
        self.size = [1] * count

    def find(self, row: int) -> int:
        while self.parent[row] != row:
            self.parent[row] = self.parent[self.parent[row]]
            row = self.parent[row]
        return row

    def join(self, a: int, b: int) -> None:
        first, second = self.find(a), self.find(b)
        if first != second:
            self.parent[first] = second
            self.size[second] += self.size[first]

    def bridges(self, a: int, b: int) -> bool:
        """Whether joining ``a`` and ``b`` would join two groups of two or more."""
        first, second = self.find(a), self.find(b)
        return first != second and min(self.size[first], self.size[second]) >= 2


SURE_AGREEMENT = 0.90  # a copy pair that agrees less than this (a watermark's copy: 0.76 and up;
# two screenshots of different low-detail photos in one viewer's window: 0.82) joins a lone
# picture to a group, or two lone pictures, but never two groups: one doubtful pair must not chain
# different photos (on the hard-copies bench it joined two screenshots and their originals)


def _strength(pair: Pair) -> float:
    """How sure a pair is: the same bytes, then by the pictures' agreement (not told: as sure)."""
    if pair.match is None or pair.match.agreement is None:
        return 2.0
    return pair.match.agreement


def _doubtful(pair: Pair) -> bool:
    return _strength(pair) < SURE_AGREEMENT


def one_channel(path: Path) -> bool:
    """Whether a file holds one channel (grayscale), read from its header as the keeper rules read it."""
    return keeper.facts_of(0, path, 0).one_channel


def _copies(
    items: list[store.Item], rows: list[int], root: Path
) -> tuple[dict[int, Copy], dict[int, keeper.Facts]]:
    """The members of a group by row, and the facts the keeper rules compare of each file."""
    facts = {}
    copies = {}
    for row in rows:
        item = items[row]
        facts[row] = keeper.facts_of(item.id, root / item.path, item.mtime_ns)
        copies[row] = Copy(item.id, item.path, facts[row].pixels, item.mtime_ns)
    return copies, facts


@dataclass(frozen=True)
class _ReadOff:
    """What a group's verified matches say of its members (rows)."""

    cropped: set[int]  # show only part of another member's picture (its crops)
    framed: set[int]  # hold another member's picture in a frame (a border, a caption bar, a window)
    colourless: set[int]  # their pixels carry no colour
    altered: bool  # two members' pictures differ: recoloured, mirrored, or under an overlay


def _read_off_matches(rows: list[int], by_rows: dict[tuple[int, int], Pair]) -> _ReadOff:
    """What the group's pairs say of each member (_ReadOff): a picture held wholly in another file
    is that file's crop, unless the file holds it in a frame."""
    cropped: set[int] = set()
    framed: set[int] = set()
    colourless: set[int] = set()
    altered = False
    for a, b in ((a, b) for a in rows for b in rows if (a, b) in by_rows):  # this group's pairs only
        pair = by_rows[a, b]
        verified = pair.match
        if verified is None or {pair.a, pair.b} != {a, b}:
            continue
        first = pair.a == a
        holder = pair_evidence.holder_of(verified.match)
        shown = verified.match.coverage_b if first else verified.match.coverage_a
        if verified.framed and holder is not None:
            if holder == (0 if first else 1):
                framed.add(a)
        elif shown < keeper.CROPPED_BELOW:
            cropped.add(a)
        if verified.a_gray if first else verified.b_gray:
            colourless.add(a)
        overlaid = verified.a_overlaid or verified.b_overlaid
        altered |= verified.recoloured or verified.match.mirrored or overlaid or _doubtful(pair)
    return _ReadOff(cropped, framed, colourless, altered)


def what_it_is(
    verified: CopyMatch | None, copy_is_a: bool, files_one_channel: tuple[bool, bool] = (False, False)
) -> str:
    """How a copy differs from the copy to keep, read off their match (``copy_is_a``: the copy is
    the match's first image); ``files_one_channel``: whether the copy's file and the keeper's hold
    one channel (the same gray pixels in a grayscale file are the grayscale copy)."""
    if verified is None:
        return "the same file"
    match = verified.match
    if verified.shot:
        shared = min(match.coverage_a, match.coverage_b)
        when = f", taken {verified.taken_apart:g} s apart" if verified.taken_apart else ""
        return f"another shot of the scene (they share {shared:.0%} of it{when})"
    seen = match.coverage_b if copy_is_a else match.coverage_a  # the share of the keeper the copy shows
    filled = match.coverage_a if copy_is_a else match.coverage_b  # the share of the copy the keeper fills
    scale = match.scale if copy_is_a else 1 / match.scale  # keeper pixels per copy pixel
    turn = match.turn if copy_is_a else -match.turn
    said = ["mirrored"] if match.mirrored else []
    quarter = round(turn / 90) * 90 % 360
    if abs(turn) > 10:
        said.append(f"turned {quarter}°")
    if seen < keeper.CROPPED_BELOW:
        said.append(f"cropped to {seen:.0%} of it")
    if filled < keeper.CROPPED_BELOW:
        said.append(f"framed (the picture fills {filled:.0%})")
    if not 0.9 <= scale <= 1.11:
        said.append(f"resized to {1 / scale:.0%}")
    grays = verified.a_gray, verified.b_gray
    copy_gray, keeper_gray = grays if copy_is_a else grays[::-1]
    copy_file_gray, keeper_file_gray = files_one_channel
    if copy_gray and (not keeper_gray or (copy_file_gray and not keeper_file_gray)):
        said.append("grayscale")
    elif verified.recoloured:
        said.append("recoloured")
    if verified.a_overlaid if copy_is_a else verified.b_overlaid:
        said.append("with something laid over it (a watermark, a sticker, text)")
    return ", ".join(said) or "re-encoded"


def from_pairs(
    items: list[store.Item],
    pairs: list[Pair],
    threshold: float,
    root: Path,
    hidden: Iterable[int] = (),
    decided: Decided | None = None,
    rules: Sequence[str] = keeper.DEFAULT_RULES,
) -> list[Group]:
    """The groups that the pairs within ``threshold`` make (the same bytes and pairs found by their
    hash or shared features at any threshold: the embedding's distance does not measure them),
    ``hidden`` ids left out; each with the copy to keep and, for every other member, what it is.
    What ``decided`` settled is not shown again: pairs inside one decision are dropped, and a
    settled decision's members stand as its keeper (a new copy of them is a group of the keeper
    and the new copy)."""
    gone, decided = set(hidden), decided or Decided()

    def listed(p: Pair) -> bool:
        return p.match is None or p.distance <= threshold or p.match.found_by != "embedding"

    kept = [
        p
        for p in pairs
        if listed(p) and not {items[p.a].id, items[p.b].id} & gone and not decided.within_one(p.a, p.b)
    ]
    standing = [(decided.stand_in(p.a), decided.stand_in(p.b), p) for p in kept]
    standing = [(a, b, p) for a, b, p in standing if a != b]
    copies = [(a, b, p) for a, b, p in standing if p.match is None or not p.match.shot]
    shots = [(a, b, p) for a, b, p in standing if p.match is not None and p.match.shot]
    found = _groups(items, copies, root, rules) + _groups(items, shots, root, keeper.SHOT_RULES, shots=True)
    order = {"exact": 0, "near": 1, "similar": 2}
    return sorted(found, key=lambda g: (order[g.kind], -len(g.members), g.keep))


def _groups(
    items: list[store.Item],
    pairs: list[tuple[int, int, Pair]],
    root: Path,
    rules: Sequence[str],
    shots: bool = False,
) -> list[Group]:
    """The groups that ``pairs`` (row, row, pair) join: of copies, or with ``shots`` of similar shots."""
    sets, joined = _Sets(len(items)), []
    for a, b, p in sorted(pairs, key=lambda found: -_strength(found[2])):  # the surest first
        if shots or not (_doubtful(p) and sets.bridges(a, b)):
            sets.join(a, b)
            joined.append((a, b, p))
    pairs = joined
    members: dict[int, list[int]] = {}
    for row in {r for a, b, _ in pairs for r in (a, b)}:
        members.setdefault(sets.find(row), []).append(row)
    by_rows: dict[tuple[int, int], Pair] = {}
    for a, b, p in pairs:
        by_rows.setdefault((a, b), p)
        by_rows.setdefault((b, a), p)
    return [_verified_group(items, sorted(rows), by_rows, root, rules, shots) for rows in members.values()]


def resolved_groups(
    items: list[store.Item], decisions: Iterable[Decision], root: Path, hidden: Iterable[int] = ()
) -> list[Group]:
    """One group per decision, its members as they are now: those the index still holds (by their
    bytes, wherever they moved) and those it no longer does (removed or in the trash)."""
    by_sha1 = rows_by_sha1(items, hidden)
    found = []
    for decision in decisions:
        rows = sorted(covered_rows(items, decision.members, by_sha1))
        copies, _ = _copies(items, rows, root)
        listed = [copies[row] for row in rows]
        moved = {move.id: move.trashed for move in decision.moves}
        for member in _missing(decision, [items[row] for row in rows]):
            what = f"in the trash: {moved[member.id]}" if member.id in moved else "removed from the index"
            listed.append(Copy(member.id, member.path, 0, 0, what))
        keeper = next(
            (copies[r].id for r in rows if items[r].sha1 == decision.keeper.sha1), decision.keeper.id
        )
        found.append(
            Group(
                "decided",
                keeper,
                f"decided: {decision.kind.replace('_', ' ')}",
                listed,
                0.0,
                state="resolved",
                decision=decision,
            )
        )
    return found


def _missing(decision: Decision, present: list[store.Item]) -> list[Member]:
    """The members of a decision that no present item stands for: each item stands for the member
    at its path, else (renamed) for one with its bytes."""
    left = list(present)
    missing = []
    for member in sorted(decision.members, key=lambda m: all(i.path != m.path for i in present)):
        found = next((i for i in left if i.path == member.path), None)
        found = found or next(
            (i for i in left if i.sha1 == member.sha1 and i.path not in {m.path for m in decision.members}),
            None,
        )
        if found is None:
            missing.append(member)
        else:
            left.remove(found)
    return missing


def _verified_group(
    items: list[store.Item],
    rows: list[int],
    by_rows: dict,
    root: Path,
    rules: Sequence[str],
    shots: bool = False,
) -> Group:
    copies, facts = _copies(items, rows, root)
    said = _read_off_matches(rows, by_rows) if not shots else _ReadOff(set(), set(), set(), False)
    facts = {
        row: dataclasses.replace(
            f,
            cropped=row in said.cropped,
            framed=row in said.framed,
            colourless=row in said.colourless,
            altered=said.altered,
            sharpness=keeper.sharpness_of(root / items[row].path) if shots else 0.0,
        )
        for row, f in facts.items()
    }
    row_of = {f.id: row for row, f in facts.items()}
    keep_row, runner_up = (row_of[f.id] for f in keeper.ranked(list(facts.values()), rules)[:2])
    kept_because = keeper.why(facts[keep_row], facts[runner_up], rules)
    for row in rows:
        if row == keep_row:
            continue
        pair = by_rows.get((row, keep_row))
        if pair is None:
            copies[row].what = "another shot of the scene" if shots else "a copy of another copy in the group"
            continue
        if {pair.a, pair.b} != {row, keep_row}:  # matched a picture decided with the keeper
            copies[row].what = f"a copy of {items[pair.b if pair.a == row else pair.a].path}, decided with it"
            continue
        files = (facts[row].one_channel, facts[keep_row].one_channel)
        copies[row].what = what_it_is(pair.match, copy_is_a=pair.a == row, files_one_channel=files)
        copies[row].match = pair.match
    exact = len({items[row].sha1 for row in rows}) == 1
    distance = max((by_rows[(a, b)].distance for a in rows for b in rows if (a, b) in by_rows), default=0.0)
    kind = "similar" if shots else "exact" if exact else "near"
    return Group(
        kind,
        copies[keep_row].id,
        REASONS[kind],
        [copies[r] for r in rows],
        distance,
        kept_because,
    )


REASONS = {
    "exact": "the same file content (SHA-1)",
    "near": "the same picture: verified by matching local features",
    "similar": "similar shots: one scene, framed apart (neither picture holds the other) or taken apart",
}
