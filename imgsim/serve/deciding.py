"""Decisions about duplicates, made and undone: recorded in the live store before any file moves.

Keep all and not copies only record the decision. Remove others also deletes the other copies
from the index (their files stay). Trash others moves their files into ``.imgsim-trash/`` inside
the collection (a hidden folder: no build indexes it) and deletes them from the index; the service
never deletes a file. Both are journaled: the decision and every planned move are committed first
(state ``moving``), each file is moved with one rename (it is at one place or the other,
whatever is killed when), and ``recover`` finishes what a crash left moving or restoring. Undoing
brings the files back to their places and into the index (under new ids: an id removed is never
given again), and lets a later build index their paths again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from pathlib import Path

from imgsim import durable
from imgsim.duplicates import decisions
from imgsim.duplicates.decisions import Decision, Member, Move
from imgsim.live import live
from imgsim.serve.catalogue import Catalogue
from imgsim.serve.ingest import Ingest
from imgsim.serve.refusals import ServiceError

TRASH = ".imgsim-trash"  # inside the collection: a rename, never a copy; hidden from every scan


class Deciding:
    """Record, carry out and undo decisions about groups of copies."""

    def __init__(
        self, catalogue: Catalogue, live_store: live.LiveStore, ingest: Ingest, logger: logging.Logger
    ):
        self.catalogue = catalogue
        self.live_store = live_store
        self.ingest = ingest
        self.logger = logger

    def decide(self, kind: str, ids: list[int]) -> Decision:
        """Record ``kind`` for the items ``ids`` (the first: the copy kept) and carry it out."""
        try:
            chosen = decisions.as_kind(kind)
        except ValueError as error:
            raise ServiceError("bad_decision", str(error)) from None
        if len(set(ids)) < 2 or len(set(ids)) != len(ids):
            raise ServiceError("bad_id", "a decision names two different ids or more, each once")
        snap, view = self.catalogue.current()
        members = []
        for item_id in ids:
            try:
                _, item = self.catalogue.item(snap, view, item_id)
            except ServiceError:
                raise ServiceError("bad_id", f"no image with id {item_id} in the index") from None
            members.append(Member(item_id, item.path, item.sha1))
        moves: tuple[Move, ...] = ()
        if kind == "trash_others":
            _writable(snap.index.collection_root / TRASH)
            folder = f"{TRASH}/{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            moves = tuple(Move(m.id, m.path, f"{folder}/{m.path}") for m in members[1:])
        acts = kind in ("remove_others", "trash_others")  # recorded as under way until carried out
        made = Decision(0, chosen, tuple(members), time.time(), "moving" if acts else "done", moves)
        decision = self.live_store.decide(made)
        if acts:
            self._carry_out(decision)
        return dataclasses.replace(decision, state="done")

    def undo(self, decision_id: int) -> Decision:
        """Take a decision back: files come back from the trash, removed copies back into the index."""
        decision = self._find(decision_id)
        if decision.kind in ("remove_others", "trash_others"):
            self.live_store.set_decision_state(decision.id, "restoring")
            self._restore(decision)
        self.live_store.forget_decision(decision.id)
        return decision

    def recover(self) -> None:
        """Finish what a crash left under way: moves to the trash go on, undoing goes on."""
        for decision in self.live_store.decisions():
            if decision.state == "moving":
                self._carry_out(decision)
            elif decision.state == "restoring":
                self._restore(decision)
                self.live_store.forget_decision(decision.id)

    def _find(self, decision_id: int) -> Decision:
        for decision in self.live_store.decisions():
            if decision.id == decision_id:
                return decision
        raise ServiceError("unknown_decision", f"no decision with id {decision_id}")

    def _root(self) -> Path:
        snap, _ = self.catalogue.current(allow_empty=True)
        return snap.index.collection_root

    def _remove(self, item_id: int) -> None:
        try:
            self.ingest.remove(item_id)
        except ServiceError as error:  # removed already (by another request, or before a crash)
            if error.code != "unknown_id":
                raise

    def _carry_out(self, decision: Decision) -> None:
        """Remove the other copies from the index, their files moved to the trash first if asked."""
        root = self._root()
        for move in decision.moves:
            _move(root / move.path, root / move.trashed)
        for member in decision.members[1:]:
            self._remove(member.id)
        self.live_store.set_decision_state(decision.id, "done")

    def _restore(self, decision: Decision) -> None:
        root = self._root()
        for move in decision.moves:
            _move(root / move.trashed, root / move.path)
        snap, view = self.catalogue.current(allow_empty=True)
        present = {a.path for a in view.additions} | {
            item.path for item in snap.index.items if item.id not in view.hidden
        }
        for member in decision.members[1:]:
            self.live_store.restore_path(member.id)
            if member.path not in present and (root / member.path).is_file():
                self.ingest.add_file(member.path)


def _move(source: Path, target: Path) -> None:
    """Move a file with one rename, once: a file already moved (before a crash) stays where it is."""
    if target.exists() or not source.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)
    durable.fsync_dir(target.parent)
    durable.fsync_dir(source.parent)


def _writable(trash: Path) -> None:
    """Refuse a trash move before anything is recorded where the collection cannot be written."""
    try:
        trash.mkdir(exist_ok=True)
    except OSError:
        raise ServiceError(
            "cannot_store", "the server cannot move files to the trash (is the collection folder writable?)"
        ) from None
