"""The web layer: Flask blueprints over the one Service of each worker.

``init_app`` hands the Service to the app (as the Flask tutorial's ``db.init_app`` does for its
database); views reach it through ``current_service()``. Blueprints: ``search`` (the pages and
the JSON search API), ``files`` (images and thumbnails by id), ``admin`` (adding and removing
images), ``ops`` (health, stats, the API description); ``errors`` answers every failure.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, g, request

from imgsim.serve import metrics
from imgsim.serve.service import Service, ServiceError

EXTENSION = "imgsim"


def init_app(app: Flask, svc: Service) -> None:
    app.extensions[EXTENSION] = svc
    app.before_request(_started)
    app.after_request(_measured)


def _started() -> None:
    g.started = time.perf_counter()


def _measured(response: Response) -> Response:
    """Every answer, errors included, into imgsim_requests_total and imgsim_request_seconds."""
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    metrics.request_done(route, request.method, response.status_code, seconds)
    return response


def service_of(app: Flask) -> Service:
    return app.extensions[EXTENSION]


def current_service() -> Service:
    return service_of(current_app)


def number_param(name: str, low: float, high: float, default: str, code: str, what: str) -> float:
    """A numeric query or form parameter within [low, high] (NaN refused), or the 400 that says so."""
    raw = request.values.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        raise ServiceError(400, code, f"{name} must be {what} from {low:g} to {high:g}, got {raw!r}")
    return value


def counted(blueprint: Blueprint) -> Blueprint:
    """Count the blueprint's requests by view name, for /stats."""

    @blueprint.before_request
    def count() -> None:
        if request.endpoint:
            current_service().counts[request.endpoint.rsplit(".", 1)[-1]] += 1

    return blueprint
