"""For the people and machines that run the service: health for load balancers, stats, the API."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, send_from_directory

from imgsim.serve import metrics
from imgsim.serve.service import ServiceError
from imgsim.serve.web import current_service

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    body, status = current_service().health()
    return jsonify(body), status


@bp.get("/stats")
def stats():
    return jsonify(current_service().stats())


@bp.get("/metrics")
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


@bp.get("/openapi.json")
def openapi():
    return send_from_directory(current_app.static_folder, "openapi.json", mimetype="application/json")
