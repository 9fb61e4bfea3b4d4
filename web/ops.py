"""For the people and machines that run the service: health for load balancers, stats, the API."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, send_from_directory

from web import current_service

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    body, status = current_service().health()
    return jsonify(body), status


@bp.get("/stats")
def stats():
    return jsonify(current_service().stats())


@bp.get("/openapi.json")
def openapi():
    return send_from_directory(current_app.static_folder, "openapi.json", mimetype="application/json")
