"""For the people and machines that run the service: health for load balancers, stats, metrics."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, jsonify

from imgsim.serve import metrics
from imgsim.serve.service import ServiceError
from imgsim.serve.web import current_service
from imgsim.serve.web.schemas import Health, Stats

bp = APIBlueprint("ops", __name__, tag="operations")


@bp.get("/healthz")
@bp.output(Health)
@bp.doc(
    summary="Whether this worker serves an index",
    responses={
        503: {
            "description": "No index loaded",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
        }
    },
)
def healthz():
    body, status = current_service().health()
    answer = jsonify(body)  # a Response, as from every view: @bp.output only documents it
    answer.status_code = status
    return answer


@bp.get("/stats")
@bp.output(Stats)
@bp.doc(summary="This worker: requests, the index's manifest")
def stats():
    return jsonify(current_service().stats())


@bp.get("/metrics")
@bp.doc(
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "Prometheus' text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def prometheus_metrics():
    """Prometheus' text format, summed over every worker; the index facts are read at scrape time."""
    svc = current_service()
    try:
        snap, view = svc.current(allow_empty=True)
        index = snap.index
        metrics.index_state(index.manifest.model, index.version.name, view.item_count(index), view.pending)
    except ServiceError:
        pass  # no index yet: the request counters still tell something
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
