"""The pages people see and the search API: upload page, results (HTML or JSON), search by id, map."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

from apiflask import APIBlueprint
from flask import jsonify, make_response, render_template, request
from PIL import Image
from werkzeug.exceptions import RequestEntityTooLarge

from imgsim.images import imaging
from imgsim.index import matching, queries
from imgsim.measure import plots
from imgsim.serve.catalogue import THUMB_SIDE
from imgsim.serve.holder import Answer
from imgsim.serve.refusals import ServiceError
from imgsim.serve.web import PAGE, counted, current_service, page_responses
from imgsim.serve.web.errors import wants_json
from imgsim.serve.web.schemas import (
    MAX_QUERY_PARTS,
    MAX_RESULTS,
    SearchById,
    SearchForm,
    SearchParams,
    SearchResult,
)

bp = counted(APIBlueprint("search", __name__, tag="search"))


def uploaded_bytes(images: list) -> tuple[bytes, str | None]:
    """The image of a search: the form field ``image``, or the raw request body."""
    if images:
        return images[0].read(), images[0].filename or None
    if request.files:
        raise ServiceError("no_image", "send the image in a form field named 'image'")
    data = request.get_data(cache=False)
    limit = request.max_content_length
    chunked = request.content_length is None
    if chunked and limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()  # a chunked body past the limit: refused, never truncated
    return data, None


def within_budget(images: list, negatives: list) -> tuple[list[bytes], list[bytes]]:
    """The bytes of a query's images, refused before any is decoded if together they hold more
    pixels than one image may (twenty small 8000 x 8000 PNGs held a worker 12 s of CPU)."""
    wanted, unwanted = [upload.read() for upload in images], [upload.read() for upload in negatives]
    limit = current_service().cfg.max_image_pixels
    total = sum(map(imaging.pixel_count, wanted + unwanted))
    if total > limit:
        message = f"the images of one query hold {total:,} pixels, over the limit of {limit:,}"
        raise ServiceError("too_many_pixels", message)
    return wanted, unwanted


def preview_data_url(image: Image.Image) -> str:
    """The query image as a small inline JPEG: shown back to the user, never written to disk."""
    preview = image.copy()
    preview.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def search_settings(params: dict) -> tuple[int, int, tuple[str, ...], queries.Box | None]:
    """k, offset, folders and box of a search, with their defaults."""
    folders = tuple(folder for folder in params.get("folder", []) if folder)
    return params.get("k", current_service().cfg.k), params.get("offset", 0), folders, params.get("box")


def next_offset(offset: int, k: int, more: bool) -> int | None:
    """The offset of the next page of k, if there are more results and it lies within those served."""
    return offset + k if more and offset + 2 * k <= MAX_RESULTS else None


def render_answer(answer: Answer, params: dict, began: float, preview: str):
    manifest = answer.snap.index.manifest
    thresholds = manifest.thresholds
    k, offset, folders, _ = search_settings(params)
    min_score = params.get("min_score", 0.0)
    results = [
        {
            "id": hit.id,
            "path": hit.path,
            "url": f"/images/{hit.id}",
            "thumbnail": f"/thumbs/{hit.id}",
            "distance": round(hit.distance, 6),
            "score": round(hit.score, 6),
            "match": hit.match,
            "likeness": hit.likeness,
            "verified": hit.region.to_dict() if hit.region is not None else None,
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
        "query": answer.query,
        "k": k,
        "results": results,
        "index": index,
        "took_ms": took_ms,
        "min_score": min_score,
        "matches": _legend(thresholds),
        "offset": offset,
        "folders": list(folders),
        "more": answer.more,
        "truncated": answer.truncated,
        "next_offset": next_offset(offset, k, answer.more),
        # nothing better than "weak": the page says so instead of presenting them as answers
        "nothing_similar": bool(results) and all(r["match"] == "weak" for r in results),
    }
    if wants_json():
        return jsonify(payload)
    page = render_template(
        "results.html",
        result=payload,
        preview=preview,
        max_k=current_service().cfg.max_k,
        all_folders=answer.snap.index.folders,
    )
    return make_response(page)  # a Response: @bp.output serialises only the JSON answer


def _legend(thresholds: matching.Thresholds | None) -> dict | None:
    """What the labels mean on this index version: the lowest cosine of full embeddings that earns
    ``similar`` and ``related``, and the reference they were measured on (None without one:
    then only verified copies are labelled)."""
    lines = thresholds.label_lines if thresholds is not None else None
    if thresholds is None or lines is None:
        return None
    on = thresholds.reference.get("measured_on", {})
    return {
        "similar": round(1 - lines[0], 4),
        "related": round(1 - lines[1], 4),
        "reference": f"{on.get('name')}: {on.get('photos')} photos of {on.get('classes')} classes",
    }


@bp.get("/")
@bp.doc(summary="The upload page", responses=PAGE)
def home():
    svc = current_service()
    snap = svc.holder.get()
    folders = snap.index.folders if snap is not None else []
    return render_template("index.html", snap=snap, k=svc.cfg.k, max_k=svc.cfg.max_k, all_folders=folders)


@bp.post("/search")
@bp.input(SearchParams, location="query", arg_name="query")
@bp.input(SearchForm, location="form_and_files", arg_name="form")
@bp.output(SearchResult, content_type="application/json")
@bp.doc(
    summary="Search with an uploaded image",
    description="The image as the form field `image` (several for one combined query, `negative` to avoid) "
    "or as the raw request body. Parameters in the query string or the form.",
    responses=page_responses(400, 404, 409, 413),
)
def search_upload(query: dict, form: dict):
    began = time.perf_counter()
    svc = current_service()
    params = {**form, **query}  # the query string wins, as request.values did
    k, offset, folders, box = search_settings(params)
    ids, negative_ids = params.get("id", []), params.get("negative_id", [])
    images, negatives = form.get("image", []), form.get("negative", [])
    if len(images) + len(negatives) > MAX_QUERY_PARTS:
        raise ServiceError("too_many_images", f"send at most {MAX_QUERY_PARTS} images in one query")
    if len(images) > 1 or negatives or ids or negative_ids:  # several things: one combined query
        if box is not None:
            raise ServiceError("bad_box", "box goes with a single image: search a region of one photo")
        wanted, unwanted = within_budget(images, negatives)
        previews: list[str] = []

        def decoded(uploads: list[bytes], shown: bool) -> Iterator[Image.Image]:
            """Each upload decoded when the search takes it, the first one's preview kept."""
            for data in uploads:
                image = svc.searching.decode(data)
                if shown and not previews:
                    previews.append(preview_data_url(image))
                yield image

        answer = svc.searching.search_combined(
            decoded(wanted, True), ids, decoded(unwanted, False), negative_ids, k, offset, folders
        )
        return render_answer(answer, params, began, previews[0] if previews else f"/thumbs/{ids[0]}")
    data, filename = uploaded_bytes(images)
    image = svc.searching.decode(data)
    if box is not None:
        try:
            image = queries.crop(image, box)
        except queries.BadBox as error:
            raise ServiceError("bad_box", str(error)) from None
    answer = svc.searching.search_image(image, k, filename, offset, folders)
    if box is not None:
        answer.query["box"] = list(box)
    return render_answer(answer, params, began, preview_data_url(image))


@bp.get("/search")
@bp.input(SearchById, location="query", arg_name="params")
@bp.output(SearchResult, content_type="application/json")
@bp.doc(summary="Search with an indexed image", responses=page_responses(400, 404, 409))
def search_id(params: dict):
    began = time.perf_counter()
    svc = current_service()
    k, offset, folders, box = search_settings(params)
    ids, negative_ids = params.get("id", []), params.get("negative_id", [])
    if not ids:
        raise ServiceError("bad_id", "give the id of an indexed image: /search?id=17")
    if len(ids) > 1 or negative_ids:
        if box is not None:
            raise ServiceError("bad_box", "box goes with a single id: search a region of one photo")
        answer = svc.searching.search_combined([], ids, [], negative_ids, k, offset, folders)
    elif box is not None:
        answer = svc.searching.search_region(ids[0], box, k, offset, folders)
    else:
        answer = svc.searching.search_id(ids[0], k, offset, folders)
    return render_answer(answer, params, began, f"/thumbs/{ids[0]}")


@bp.get("/map", endpoint="map")
@bp.doc(summary="A map of the collection", responses=page_responses(409, 503) | PAGE)
def collection_map():
    snap, points = current_service().reports.map_points()
    classes = plots.collection_classes(snap.index.items) or []
    size = max(2.0, min(8.0, 40 / len(points) ** 0.5))  # % of the map's width: big when few
    return render_template(
        "map.html", points=points, classes=classes, snap=snap, class_of=plots.class_of, size=size
    )
