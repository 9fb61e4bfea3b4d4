"""The duplicates page: groups of copies in the collection, with the copy to keep suggested, and
the decisions about them (admin token): keep all, not copies, remove or trash the others, undo.

The token is typed into the page and sent by the browser; the page itself needs none.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import jsonify, make_response, render_template

from imgsim.serve.refusals import ServiceError
from imgsim.serve.web import api_responses, counted, current_service, page_responses, require_admin
from imgsim.serve.web.duplicate_schemas import (
    DecisionAnswer,
    DecisionBody,
    Duplicates,
    DuplicatesParams,
    Undone,
)
from imgsim.serve.web.errors import wants_json

bp = counted(APIBlueprint("copies", __name__, tag="duplicates"))


MAX_PAGE_ITEMS = 50_000  # one query per item inside a request: beyond this, the CLI does it


@bp.get("/duplicates")
@bp.input(DuplicatesParams, location="query", arg_name="params")
@bp.output(Duplicates)
@bp.doc(summary="Groups of copies in the collection", responses=page_responses(400, 409, 503))
def duplicates_page(params: dict):
    svc = current_service()
    snap, _ = svc.catalogue.current()
    if len(snap.index.items) > MAX_PAGE_ITEMS:
        raise ServiceError(
            "too_many_for_page",
            f"the index has {len(snap.index.items):,} images: list their duplicates with "
            f"`python ann.py --duplicates` (this page does it within the request, up to {MAX_PAGE_ITEMS:,})",
        )
    state = params.get("state", "open")
    snap, limit, groups = svc.reports.duplicates(params.get("threshold"), state)
    payload = {
        "state": state,
        "threshold": limit,
        "calibrated": thresholds.duplicate if (thresholds := snap.index.manifest.thresholds) else None,
        "groups": [group.to_dict() for group in groups],
        "version": snap.index.version.name,
    }
    if wants_json():
        return jsonify(payload)
    # a Response: what @bp.output would serialise is the JSON answer only
    return make_response(
        render_template("duplicates.html", result=payload, decides=bool(svc.cfg.admin_token))
    )


DECISION_ERRORS = api_responses(400, 401, 403, 404, 409, 507)


@bp.post("/duplicates/decisions")
@bp.input(DecisionBody, location="json", arg_name="body")
@bp.output(DecisionAnswer, status_code=201)
@bp.doc(summary="Decide about a group of copies", security="bearer", responses=DECISION_ERRORS)
def decide(body: dict):
    require_admin("deciding about duplicates")
    decision = current_service().deciding.decide(body["decision"], body["ids"])
    answer = jsonify(decision.to_dict())
    answer.status_code = 201
    return answer


@bp.delete("/duplicates/decisions/<int:decision_id>")
@bp.output(Undone)
@bp.doc(summary="Undo a decision (a trash move comes back)", security="bearer", responses=DECISION_ERRORS)
def undo(decision_id: int):
    require_admin("deciding about duplicates")
    return jsonify({"undone": current_service().deciding.undo(decision_id).to_dict()})
