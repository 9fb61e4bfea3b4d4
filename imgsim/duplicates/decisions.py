"""Decisions about groups of copies that stay made: what a person settled, by content, not by id.

A decision names its members by their bytes (SHA-1) and where they were, so that a rebuild, a
compaction, ``--full`` (new ids) or a renamed file finds the same pictures decided. Applying the
decisions to a version's pairs (``Decided.of``): pairs between members of one decision are not
shown again; the members of a settled decision (keep all, others removed, others trashed) stand as
one picture, their keeper, so that a new copy of it appears as a new group of the keeper and what is
new. A second file with the same bytes than the decision saw is new too (a rename is not).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from imgsim.index import store

Kind = Literal["keep_all", "not_copies", "remove_others", "trash_others"]
KINDS: tuple[str, ...] = get_args(Kind)
SETTLED: frozenset[str] = frozenset({"keep_all", "remove_others", "trash_others"})  # one picture, kept
State = Literal["moving", "done", "restoring"]  # a trash move under way, finished, being undone


@dataclass(frozen=True)
class Member:
    """One picture a decision covers, as it was when decided."""

    id: int
    path: str
    sha1: str


@dataclass(frozen=True)
class Move:
    """A file a trash decision moves: from ``path`` to ``trashed`` (both inside the collection)."""

    id: int
    path: str
    trashed: str


@dataclass(frozen=True)
class Decision:
    """What a person decided about a group (``members[0]``: the copy kept, for the last two kinds)."""

    id: int
    kind: Kind
    members: tuple[Member, ...]
    decided_at: float
    state: State = "done"
    moves: tuple[Move, ...] = ()

    @property
    def keeper(self) -> Member:
        return self.members[0]

    def to_dict(self) -> dict:
        """As the API and ``--json`` answer it."""
        return {
            "id": self.id,
            "decision": self.kind,
            "ids": [m.id for m in self.members],
            "paths": [m.path for m in self.members],
            "keep": self.keeper.id if self.kind in SETTLED else None,
            "decided_at": self.decided_at,
            "state": self.state,
            "moves": self.stored_moves(),
        }

    def stored_members(self) -> list[dict]:
        return [{"id": m.id, "path": m.path, "sha1": m.sha1} for m in self.members]

    def stored_moves(self) -> list[dict]:
        return [{"id": m.id, "path": m.path, "trashed": m.trashed} for m in self.moves]


def as_kind(text: str) -> Kind:
    """``text`` as a decision's kind (ValueError if it names none)."""
    if text not in KINDS:
        raise ValueError(f"decision must be one of {', '.join(KINDS)}, got {text!r}")
    return cast(Kind, text)


def from_stored(
    row_id: int, kind: str, members: list, moves: list, decided_at: float, state: str
) -> Decision:
    """A decision as a live store keeps it (members and moves as JSON lists)."""
    if state not in get_args(State):
        raise ValueError(f"a stored decision is in state {state!r}: not one this version knows")
    return Decision(
        row_id,
        as_kind(kind),
        tuple(Member(int(m["id"]), str(m["path"]), str(m["sha1"])) for m in members),
        float(decided_at),
        cast(State, state),
        tuple(Move(int(m["id"]), str(m["path"]), str(m["trashed"])) for m in moves),
    )


def rows_by_sha1(items: list[store.Item], hidden: Iterable[int] = ()) -> dict[str, list[int]]:
    """The rows of ``items`` by their bytes' SHA-1, ``hidden`` ids left out."""
    gone, found = set(hidden), defaultdict(list)
    for row, item in enumerate(items):
        if item.id not in gone:
            found[item.sha1].append(row)
    return found


def covered_rows(
    items: list[store.Item], members: Iterable[Member], by_sha1: dict[str, list[int]]
) -> set[int]:
    """The rows of ``items`` that stand for ``members`` (a decision's): their bytes wherever they are
    now, except further files with those bytes (more than were decided, at paths not decided)."""
    recorded: dict[str, set[str]] = defaultdict(set)
    for member in members:
        recorded[member.sha1].add(member.path)
    covered: set[int] = set()
    for sha1, paths in recorded.items():
        rows = by_sha1.get(sha1, [])
        covered.update(rows if len(rows) <= len(paths) else [r for r in rows if items[r].path in paths])
    return covered


@dataclass(frozen=True)
class Decided:
    """The decisions as they apply to one version's rows."""

    decided_in: dict[int, frozenset[int]] = field(default_factory=dict)  # row -> its decisions' ids
    standing: dict[int, int] = field(default_factory=dict)  # a settled decision's row -> its keeper's

    @classmethod
    def of(cls, items: list[store.Item], decisions: Iterable[Decision]) -> Decided:
        by_sha1 = rows_by_sha1(items)
        decided_in: dict[int, set[int]] = defaultdict(set)
        standing: dict[int, int] = {}
        for decision in sorted(decisions, key=lambda d: d.id):
            rows = covered_rows(items, decision.members, by_sha1)
            for row in rows:
                decided_in[row].add(decision.id)
            if decision.kind in SETTLED and rows:
                keeper = rows & covered_rows(items, [decision.keeper], by_sha1)
                standing.update(dict.fromkeys(rows, min(keeper or rows)))
        return cls({row: frozenset(ids) for row, ids in decided_in.items()}, standing)

    def within_one(self, a: int, b: int) -> bool:
        """Whether a person already decided about rows ``a`` and ``b`` together."""
        return bool(self.decided_in.get(a, frozenset()) & self.decided_in.get(b, frozenset()))

    def stand_in(self, row: int) -> int:
        """The row shown for ``row``: its settled decision's keeper, else itself."""
        return self.standing.get(row, row)
