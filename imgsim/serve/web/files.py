"""Images and thumbnails, by id only: paths come from the catalogue, never from the request."""

from __future__ import annotations

from flask import Blueprint, send_file

from imgsim.serve.web import counted, current_service

bp = counted(Blueprint("files", __name__))


@bp.get("/images/<int:item_id>")
def images(item_id: int):
    return send_file(current_service().image_path(item_id), max_age=3600)


@bp.get("/thumbs/<int:item_id>")
def thumbs(item_id: int):
    return send_file(current_service().thumbnail_path(item_id), mimetype="image/jpeg", max_age=86400)
