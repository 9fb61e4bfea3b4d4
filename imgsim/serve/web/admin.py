"""Adding and removing images while the service runs; both need the admin token."""

from __future__ import annotations

import hmac
import json

from flask import Blueprint, jsonify, request

from imgsim.serve.service import ServiceError
from imgsim.serve.web import counted, current_service

bp = counted(Blueprint("admin", __name__))


@bp.before_request
def require_admin() -> None:
    token = current_service().cfg.admin_token
    if not token:
        raise ServiceError(403, "disabled", "adding and removing images is off: set IMGSIM_ADMIN_TOKEN")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise ServiceError(401, "unauthorized", "send the admin token as 'Authorization: Bearer TOKEN'")


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


def parse_metadata() -> dict:
    """The optional ``metadata`` field: a JSON object, strictly JSON (no NaN), not too deep."""
    try:
        metadata = json.loads(request.form.get("metadata") or "{}", parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ServiceError(400, "bad_metadata", "metadata must be a JSON object (strict JSON)") from None
    if not isinstance(metadata, dict):
        raise ServiceError(400, "bad_metadata", "metadata must be a JSON object")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise ServiceError(400, "bad_metadata", f"metadata may nest at most {MAX_METADATA_DEPTH} levels deep")
    return metadata


@bp.post("/images")
def add():
    upload = request.files.get("image")
    if upload is None:
        raise ServiceError(400, "no_image", "send the image in a form field named 'image'")
    svc = current_service()
    data = upload.read()
    image = svc.decode(data)  # refuse bad input before anything is stored
    metadata = parse_metadata()
    name = request.form.get("name") or request.form.get("path") or upload.filename
    if name:
        metadata["original_name"] = name  # kept as data only: the stored file's name is ours
    added = svc.add(data, image, metadata)
    return jsonify(
        {"id": added.id, "path": added.path, "url": f"/images/{added.id}", "metadata": metadata}
    ), 201


@bp.delete("/images/<int:item_id>")
def remove(item_id: int):
    return jsonify({"deleted": item_id, "path": current_service().remove(item_id)})
