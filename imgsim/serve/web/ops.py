"""For the people and machines that run the service: health for load balancers, stats, metrics."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, jsonify

from imgsim.serve import metrics
from imgsim.serve.refusals import ServiceError
from imgsim.serve.web import current_service, has_admin_token
from imgsim.serve.web.schemas import Health, Stats

bp = APIBlueprint("ops", __name__, tag="operations")

UNAVAILABLE: dict[Any, Any] = {
    503: {
        "description": "No index loaded",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
    }
}
PROMETHEUS_TEXT: dict[Any, Any] = {
    200: {"description": "Prometheus' text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


@bp.get("/healthz")
@bp.output(Health)
@bp.doc(
    summary="Whether this worker serves an index",
    responses=UNAVAILABLE,
)
def healthz():
    body = current_service().status.health()
    if "reason" in body and not has_admin_token():
        body["reason"] = NOT_LOADED
    if "refused" in body and not has_admin_token():
        body["refused"] = "a newer index version did not load; the admin token shows why"
    answer = jsonify(body)  # a Response, as from every view: @bp.output only documents it
    answer.status_code = 200 if body["status"] == "ok" else 503  # what load balancers read
    return answer


@bp.get("/stats")
@bp.output(Stats)
@bp.doc(summary="This worker: requests, the index's manifest")
def stats():
    body = current_service().status.stats()
    return jsonify(body if has_admin_token() else public(body))


NOT_LOADED = (
    "no index is loaded in this worker: build one with `imgsim index FOLDER` (python img2vec.py FOLDER); "
    "the admin token shows the error"
)
PRIVATE = ("collection_root", "dataset", "model_source", "weights")  # paths on the server


def public(stats: dict) -> dict:
    """/stats for anyone: no paths on the server, no process id, no exception text."""
    index = stats["index"] and {k: v for k, v in stats["index"].items() if k not in PRIVATE}
    failed = "the index did not load (the admin token shows why)" if stats["load_error"] else None
    rest = {k: v for k, v in stats.items() if k != "worker_pid"}
    return rest | {"index": index, "load_error": failed}


@bp.get("/metrics")
@bp.doc(
    summary="Prometheus metrics",
    responses=PROMETHEUS_TEXT,
)
def prometheus_metrics():
    """Prometheus' text format, summed over every worker; the index facts are read at scrape time."""
    svc = current_service()
    try:
        snap, view = svc.catalogue.current(allow_empty=True)
        index = snap.index
        metrics.index_state(index.manifest.model, index.version.name, view.item_count(index), view.pending)
    except ServiceError:
        pass  # no index yet: the request counters still tell something
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
