"""Images and thumbnails, by id only: paths come from the catalogue, never from the request."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import send_file

from imgsim.serve.web import counted, current_service

IMAGE: dict[Any, Any] = {
    200: {
        "description": "The image file",
        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}

bp = counted(APIBlueprint("files", __name__, tag="files"))


@bp.get("/images/<int:id>")
@bp.doc(summary="An indexed image, as stored", responses=IMAGE)
def images(id: int):
    return send_file(current_service().catalogue.image_path(id), max_age=3600)


@bp.get("/thumbs/<int:id>")
@bp.doc(summary="A JPEG thumbnail of an indexed image", responses=IMAGE)
def thumbs(id: int):
    return send_file(current_service().catalogue.thumbnail_path(id), mimetype="image/jpeg", max_age=86400)
