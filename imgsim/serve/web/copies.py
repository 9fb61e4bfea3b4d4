"""The duplicates page: groups of copies in the collection, with the copy to keep suggested.

Admins delete the others from the page through the existing ``DELETE /images/<id>`` (the token is
typed into the page and sent by the browser; the page itself needs none).
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, jsonify, render_template, request

from imgsim.serve.service import ServiceError
from imgsim.serve.web import counted, current_service, number_param
from imgsim.serve.web.errors import wants_json

bp = counted(Blueprint("copies", __name__))


def parse_threshold() -> float | None:
    """``threshold``: a distance (angular distances lie in 0..2); none = the version's calibrated one."""
    if not request.values.get("threshold"):
        return None
    return number_param("threshold", 0.0, 2.0, "", "bad_threshold", "a distance")


MAX_PAGE_ITEMS = 50_000  # one query per item inside a request: beyond this, the CLI does it


@bp.get("/duplicates")
def duplicates_page():
    svc = current_service()
    snap, _ = svc.current()
    if len(snap.index.items) > MAX_PAGE_ITEMS:
        raise ServiceError(
            409, "too_many_for_page",
            f"the index has {len(snap.index.items):,} images: list their duplicates with "
            f"`python ann.py --duplicates` (this page does it within the request, up to {MAX_PAGE_ITEMS:,})",
        )  # fmt: skip
    snap, limit, groups = svc.duplicates(parse_threshold())
    payload = {
        "threshold": limit,
        "calibrated": snap.index.manifest.thresholds.get("duplicate"),
        "groups": [asdict(group) for group in groups],
        "version": snap.index.version.name,
    }
    if wants_json():
        return jsonify(payload)
    return render_template("duplicates.html", result=payload, deletes=bool(svc.cfg.admin_token))
