"""The duplicates page: groups of copies in the collection, with the copy to keep suggested.

Admins delete the others from the page through the existing ``DELETE /images/<id>`` (the token is
typed into the page and sent by the browser; the page itself needs none).
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import jsonify, make_response, render_template

from imgsim.serve.refusals import ServiceError
from imgsim.serve.web import counted, current_service, page_responses
from imgsim.serve.web.errors import wants_json
from imgsim.serve.web.schemas import Duplicates, DuplicatesParams

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
    snap, limit, groups = svc.reports.duplicates(params.get("threshold"))
    payload = {
        "threshold": limit,
        "calibrated": thresholds.duplicate if (thresholds := snap.index.manifest.thresholds) else None,
        "groups": [group.to_dict() for group in groups],
        "version": snap.index.version.name,
    }
    if wants_json():
        return jsonify(payload)
    # a Response: what @bp.output would serialise is the JSON answer only
    return make_response(
        render_template("duplicates.html", result=payload, deletes=bool(svc.cfg.admin_token))
    )
