"""The duplicates part of the HTTP contract: groups of copies, and the decisions made about them."""

from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf

from imgsim.duplicates import decisions
from imgsim.duplicates.finding import STATES
from imgsim.serve.web.schemas import MAX_QUERY_PARTS, Format, Fraction, Id, VerifiedMatch


class DuplicatesParams(Format):
    threshold = Fraction(
        "threshold",
        0.0,
        2.0,
        "a distance",
        empty_is_none=True,
        metadata={"description": "distance under which photos are copies; default: the version's own"},
    )
    state = fields.String(
        validate=OneOf(STATES, error="state must be one of open, resolved, all"),
        metadata={"description": "open (default): groups nobody decided; resolved: one per decision; all"},
    )


class Copy(Schema):
    id = fields.Integer(required=True)
    path = fields.String(required=True)
    pixels = fields.Integer(required=True)
    mtime_ns = fields.Integer(required=True)
    what = fields.String(required=True, metadata={"description": "how it differs from the copy to keep"})
    match = fields.Nested(VerifiedMatch, allow_none=True, required=True)


class DecisionAnswer(Schema):
    id = fields.Integer(
        required=True, metadata={"description": "DELETE /duplicates/decisions/<id> undoes it"}
    )
    decision = fields.String(required=True, validate=OneOf(decisions.KINDS))
    ids = fields.List(fields.Integer(), required=True, metadata={"description": "the copy kept first"})
    paths = fields.List(fields.String(), required=True)
    keep = fields.Integer(required=True, allow_none=True)
    decided_at = fields.Float(required=True)
    state = fields.String(required=True, validate=OneOf(["moving", "done", "restoring"]))
    moves = fields.List(
        fields.Dict(), required=True, metadata={"description": "trash moves: id, path, trashed"}
    )


class Group(Schema):
    kind = fields.String(required=True, validate=OneOf(["exact", "near", "similar", "decided"]))
    keep = fields.Integer(required=True)
    reason = fields.String(required=True)
    members = fields.List(fields.Nested(Copy), required=True)
    distance = fields.Float(required=True)
    why_kept = fields.String(
        required=True, metadata={"description": "the rule that chose the copy to keep over the next one"}
    )
    state = fields.String(required=True, validate=OneOf(["open", "resolved"]))
    decision = fields.Dict(
        required=True,
        allow_none=True,
        metadata={"description": "a resolved group's decision (DecisionAnswer)"},
    )


class Duplicates(Schema):
    state = fields.String(
        required=True, validate=OneOf(STATES), metadata={"description": "the groups listed"}
    )
    threshold = fields.Float(required=True)
    calibrated = fields.Float(required=True, allow_none=True)
    groups = fields.List(fields.Nested(Group), required=True)
    version = fields.String(required=True)


class DecisionBody(Schema):
    """POST /duplicates/decisions: what was decided about which items (the copy kept first)."""

    ids = fields.List(
        Id("ids"),
        required=True,
        validate=Length(min=2, max=MAX_QUERY_PARTS * 50, error="give 2 ids or more (at most 1,000)"),
        metadata={"description": "the group's ids; the first is the copy kept (remove_others, trash_others)"},
    )
    decision = fields.String(
        required=True,
        validate=OneOf(decisions.KINDS, error="decision must be one of " + ", ".join(decisions.KINDS)),
    )


class Undone(Schema):
    undone = fields.Dict(required=True, metadata={"description": "the decision undone, as it was answered"})
