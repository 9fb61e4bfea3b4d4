"""Adding and removing images while the service runs; both need the admin token."""

from __future__ import annotations

import json

from apiflask import APIBlueprint
from flask import jsonify

from imgsim.serve.refusals import ServiceError
from imgsim.serve.web import api_responses, counted, current_service, require_admin
from imgsim.serve.web.schemas import Added, AddForm, Deleted

bp = counted(APIBlueprint("admin", __name__, tag="admin"))
ADMIN_ERRORS = api_responses(401, 403)


@bp.before_request
def admin_only() -> None:
    require_admin("adding and removing images")


MAX_METADATA_DEPTH = 16


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: object) -> int:
    """How deeply lists and objects nest, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            stack.extend(
                (child, depth + 1) for child in (value.values() if isinstance(value, dict) else value)
            )
    return deepest


def parse_metadata(raw: str) -> dict:
    """The optional ``metadata`` field: a JSON object, strictly JSON (no NaN), not too deep."""
    try:
        metadata = json.loads(raw or "{}", parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ServiceError("bad_metadata", "metadata must be a JSON object (strict JSON)") from None
    if not isinstance(metadata, dict):
        raise ServiceError("bad_metadata", "metadata must be a JSON object")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise ServiceError("bad_metadata", f"metadata may nest at most {MAX_METADATA_DEPTH} levels deep")
    return metadata


@bp.post("/images")
@bp.input(AddForm, location="form_and_files", arg_name="form")
@bp.output(Added, status_code=201)
@bp.doc(
    summary="Add an image to the running index",
    security="bearer",
    responses=ADMIN_ERRORS | api_responses(413, 507),
)
def add(form: dict):
    upload = form["image"]
    svc = current_service()
    data = upload.read()
    image = svc.searching.decode(data)  # refuse bad input before anything is stored
    metadata = parse_metadata(form.get("metadata", ""))
    name = form.get("name") or form.get("path") or upload.filename
    if name:
        metadata["original_name"] = name  # kept as data only: the stored file's name is ours
    added = svc.ingest.add(data, image, metadata)
    answer = jsonify({"id": added.id, "path": added.path, "url": f"/images/{added.id}", "metadata": metadata})
    answer.status_code = 201
    return answer


@bp.delete("/images/<int:id>")
@bp.output(Deleted)
@bp.doc(
    summary="Remove an image from the index", security="bearer", responses=ADMIN_ERRORS | api_responses(404)
)
def remove(id: int):
    return jsonify({"deleted": id, "path": current_service().ingest.remove(id)})
