"""The pages people see and the search API: upload page, results (HTML or JSON), search by id, map."""

from __future__ import annotations

import base64
import io
import time

from flask import Blueprint, jsonify, render_template, request
from PIL import Image
from werkzeug.exceptions import RequestEntityTooLarge

from imgsim.index import matching, queries
from imgsim.index.vectors import distance_to_score
from imgsim.measure import plots
from imgsim.serve.service import THUMB_SIDE, Answer, ServiceError
from imgsim.serve.web import counted, current_service, number_param
from imgsim.serve.web.errors import wants_json

bp = counted(Blueprint("search", __name__))


def parse_k() -> int:
    cfg = current_service().cfg
    raw = request.values.get("k", str(cfg.k))
    try:
        k = int(raw)
    except ValueError:
        raise ServiceError(
            400, "bad_k", f"k must be a whole number from 1 to {cfg.max_k}, got {raw!r}"
        ) from None
    if not 1 <= k <= cfg.max_k:
        raise ServiceError(400, "bad_k", f"k must be from 1 to {cfg.max_k}, got {k}")
    return k


def parse_min_score() -> float:
    """``min_score``: results scoring below it are dropped (0 = keep all, the default)."""
    return number_param("min_score", 0.0, 1.0, "0", "bad_min_score", "a number")


MAX_OFFSET = 10_000
MAX_FOLDERS = 20


def parse_offset() -> int:
    raw = request.values.get("offset", "0")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_OFFSET:
        raise ServiceError(
            400, "bad_offset", f"offset must be a whole number from 0 to {MAX_OFFSET}, got {raw!r}"
        )
    return int(raw)


def parse_folders() -> tuple[str, ...]:
    """``folder=PREFIX`` (repeatable): keep results under these folders of the collection."""
    folders = tuple(f.strip("/") for f in request.values.getlist("folder") if f.strip("/"))
    if len(folders) > MAX_FOLDERS:
        raise ServiceError(400, "bad_folder", f"give at most {MAX_FOLDERS} folder parameters")
    if any(".." in f.split("/") or len(f) > 500 for f in folders):
        raise ServiceError(400, "bad_folder", "a folder is a path inside the collection, without '..'")
    return folders


def uploaded_bytes() -> tuple[bytes, str | None]:
    """The image of a search: the form field ``image``, or the raw request body."""
    upload = request.files.get("image")
    if upload is not None:
        return upload.read(), upload.filename or None
    if request.files:
        raise ServiceError(400, "no_image", "send the image in a form field named 'image'")
    data = request.get_data(cache=False)
    limit = request.max_content_length
    chunked = request.content_length is None
    if chunked and limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()  # a chunked body past the limit: refused, never truncated
    return data, None


def preview_data_url(image: Image.Image) -> str:
    """The query image as a small inline JPEG: shown back to the user, never written to disk."""
    preview = image.copy()
    preview.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_answer(answer: Answer, k: int, began: float, preview: str, offset: int = 0, folders: tuple = ()):
    manifest = answer.snap.index.manifest
    thresholds = matching.Thresholds.from_dict(manifest.thresholds)
    min_score = parse_min_score()
    results = [
        {
            "id": hit.id,
            "path": hit.path,
            "url": f"/images/{hit.id}",
            "thumbnail": f"/thumbs/{hit.id}",
            "distance": round(hit.distance, 6),
            "score": round(hit.score, 6),
            "match": matching.label(hit.distance, thresholds),
        }
        for hit in answer.hits
        if hit.score >= min_score
    ]
    index = {
        "model": manifest.model,
        "items": answer.view.item_count(answer.snap.index),
        "built_at": manifest.created_at,
        "version": answer.snap.index.version.name,
    }
    took_ms = round((time.perf_counter() - began) * 1000, 1)
    payload = {
        "query": answer.query, "k": k, "results": results, "index": index, "took_ms": took_ms,
        "min_score": min_score, "matches": _legend(thresholds, manifest.metric),
        "offset": offset, "folders": list(folders), "more": answer.more, "truncated": answer.truncated,
        "next_offset": offset + k if answer.more else None,
        # nothing better than "weak": the page says so instead of presenting them as answers
        "nothing_similar": thresholds is not None and all(r["match"] == "weak" for r in results),
    }  # fmt: skip
    if wants_json():
        return jsonify(payload)
    return render_template(
        "results.html", result=payload, preview=preview, max_k=current_service().cfg.max_k,
        all_folders=answer.snap.index.folders,
    )  # fmt: skip


def _legend(thresholds: matching.Thresholds | None, metric: str) -> dict | None:
    """The lowest score of each label on this index version (None where it has no labels)."""
    if thresholds is None:
        return None
    limits = {"duplicate": thresholds.duplicate, "similar": thresholds.similar, "related": thresholds.related}
    return {name: round(distance_to_score(limit, metric), 4) for name, limit in limits.items()}


@bp.get("/")
def home():
    svc = current_service()
    snap = svc.holder.get()
    folders = snap.index.folders if snap is not None else []
    return render_template("index.html", snap=snap, k=svc.cfg.k, max_k=svc.cfg.max_k, all_folders=folders)


MAX_QUERY_PARTS = 20


def parse_ids(name: str) -> list[int]:
    """Repeated ``id`` (or ``negative_id``) parameters, from the query string or the form."""
    raws = request.values.getlist(name)
    if len(raws) > MAX_QUERY_PARTS:
        raise ServiceError(400, "bad_id", f"give at most {MAX_QUERY_PARTS} {name} parameters")
    for raw in raws:
        if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is True, but int("²") fails
            raise ServiceError(
                400, "bad_id", f"{name} must be the id of an indexed image (/search?id=17), got {raw!r}"
            )
    return [int(raw) for raw in raws]


def parse_box() -> queries.Box | None:
    raw = request.values.get("box", "")
    try:
        return queries.parse_box(raw) if raw else None
    except queries.BadBox as error:
        raise ServiceError(400, "bad_box", str(error)) from None


@bp.post("/search")
def search_upload():
    began = time.perf_counter()
    svc = current_service()
    k, offset, folders, box = parse_k(), parse_offset(), parse_folders(), parse_box()
    ids, negative_ids = parse_ids("id"), parse_ids("negative_id")
    images, negatives = request.files.getlist("image"), request.files.getlist("negative")
    if len(images) + len(negatives) > MAX_QUERY_PARTS:
        raise ServiceError(400, "too_many_images", f"send at most {MAX_QUERY_PARTS} images in one query")
    if len(images) > 1 or negatives or ids or negative_ids:  # several things: one combined query
        if box is not None:
            raise ServiceError(400, "bad_box", "box goes with a single image: search a region of one photo")
        decoded = [svc.decode(upload.read()) for upload in images]
        avoided = [svc.decode(upload.read()) for upload in negatives]
        answer = svc.search_combined(decoded, ids, avoided, negative_ids, k, offset, folders)
        preview = preview_data_url(decoded[0]) if decoded else f"/thumbs/{ids[0]}"
        return render_answer(answer, k, began, preview, offset, folders)
    data, filename = uploaded_bytes()
    image = svc.decode(data)
    if box is not None:
        try:
            image = queries.crop(image, box)
        except queries.BadBox as error:
            raise ServiceError(400, "bad_box", str(error)) from None
    answer = svc.search_image(image, k, filename, offset, folders)
    if box is not None:
        answer.query["box"] = list(box)
    return render_answer(answer, k, began, preview_data_url(image), offset, folders)


@bp.get("/search")
def search_id():
    began = time.perf_counter()
    svc = current_service()
    k, offset, folders, box = parse_k(), parse_offset(), parse_folders(), parse_box()
    ids, negative_ids = parse_ids("id"), parse_ids("negative_id")
    if not ids:
        raise ServiceError(400, "bad_id", "give the id of an indexed image: /search?id=17")
    if len(ids) > 1 or negative_ids:
        if box is not None:
            raise ServiceError(400, "bad_box", "box goes with a single id: search a region of one photo")
        answer = svc.search_combined([], ids, [], negative_ids, k, offset, folders)
    elif box is not None:
        answer = svc.search_region(ids[0], box, k, offset, folders)
    else:
        answer = svc.search_id(ids[0], k, offset, folders)
    return render_answer(answer, k, began, f"/thumbs/{ids[0]}", offset, folders)


@bp.get("/map", endpoint="map")
def collection_map():
    snap, points = current_service().map_points()
    classes = plots.collection_classes(snap.index.items) or []
    size = max(2.0, min(8.0, 40 / len(points) ** 0.5))  # % of the map's width: big when few
    return render_template(
        "map.html", points=points, classes=classes, snap=snap, class_of=plots.class_of, size=size
    )
