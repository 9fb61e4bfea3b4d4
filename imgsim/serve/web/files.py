"""Images and thumbnails, by id only: paths come from the catalogue, never from the request."""

from __future__ import annotations

import os
from pathlib import Path
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
    item, handle = current_service().catalogue.open_file(id)
    modified = os.fstat(handle.fileno()).st_mtime
    # the checked descriptor itself is sent: a path would be opened again, after the check
    return send_file(
        handle, download_name=Path(item.path).name, etag=item.sha1, last_modified=modified, max_age=3600
    )


@bp.get("/thumbs/<int:id>")
@bp.doc(summary="A JPEG thumbnail of an indexed image", responses=IMAGE)
def thumbs(id: int):
    return send_file(current_service().catalogue.thumbnail_path(id), mimetype="image/jpeg", max_age=86400)
