"""The web layer: Flask blueprints over the one Service of each worker.

``init_app`` hands the Service to the app (as the Flask tutorial's ``db.init_app`` does for its
database); views reach it through ``current_service()``. Blueprints: ``search`` (the pages and
the JSON search API), ``files`` (images and thumbnails by id), ``admin`` (adding and removing
images), ``ops`` (health, stats, metrics); ``errors`` answers every failure. ``schemas``
declares what each route takes and answers: apiflask validates requests and writes /openapi.json from it.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import IntegerConverter

from imgsim.serve import metrics
from imgsim.serve.refusals import ServiceError
from imgsim.serve.service import Service
from imgsim.serve.web.guesses import Guesses

EXTENSION = "imgsim"
GUESSES = "imgsim.guesses"


class AsciiInteger(IntegerConverter):
    """``<int:id>`` in a URL: ASCII digits, at most 18 (werkzeug's ``\\d+`` also takes "٣" as 3,
    and more than 4300 digits made int() fail with a 500)."""

    regex = r"[0-9]{1,18}"


def init_app(app: Flask, svc: Service) -> None:
    """Before the blueprints are registered: their routes take the app's converters."""
    app.url_map.converters["int"] = AsciiInteger
    app.extensions[EXTENSION] = svc
    app.extensions[GUESSES] = Guesses()  # this worker's wrong admin tokens, by address
    app.before_request(_started)
    app.after_request(_measured)


def _started() -> None:
    g.started = time.perf_counter()


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def _measured(response: Response) -> Response:
    """Every answer, errors included, into imgsim_requests_total and imgsim_request_seconds.

    Labels come from fixed sets (the routes, METHODS, "other"): a label taken as sent would let
    anyone add series without bound (400 made-up methods grew /metrics from 6.7 to 37.9 KB)."""
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    method = request.method if request.method in METHODS else "other"
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    metrics.request_done(route, method, response.status_code, seconds)
    return response


def service_of(app: Flask) -> Service:
    return app.extensions[EXTENSION]


def current_service() -> Service:
    return service_of(current_app)


def page_responses(*statuses: int) -> dict[Any, Any]:
    """The error answers of a route that people also open in a browser: JSON or an HTML page."""
    return {
        status: {"description": HTTP_STATUS_CODES[status], "content": ERROR_CONTENT} for status in statuses
    }


def api_responses(*statuses: int) -> dict:
    """The error answers of a route for programs only: always JSON."""
    return {
        status: {"description": HTTP_STATUS_CODES[status], "content": ERROR_CONTENT_JSON}
        for status in statuses
    }


ERROR_CONTENT_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERROR_CONTENT = ERROR_CONTENT_JSON | {"text/html": {"schema": {"type": "string"}}}
PAGE: dict[Any, Any] = {
    200: {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
}


def require_admin(what: str) -> None:
    """Refuse a request that changes the index without the admin token: 403 where ``what`` (a
    feature, "adding and removing images") is off because no token is set, else 401."""
    if not current_service().cfg.admin_token:
        raise ServiceError("disabled", f"{what} is off: set IMGSIM_ADMIN_TOKEN")
    if not has_admin_token():
        raise ServiceError("unauthorized", "send the admin token as 'Authorization: Bearer TOKEN'")


def has_admin_token() -> bool:
    """Whether this request carries the admin token (compared in constant time). A wrong one is
    counted against its address; an address that guessed too often is refused (web/guesses.py)."""
    token = current_service().cfg.admin_token
    given = request.headers.get("Authorization", "")
    if bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    if given:
        address = request.remote_addr or ""
        guesses = current_app.extensions[GUESSES]
        if guesses.refused(address):
            raise ServiceError(
                "too_many_guesses", "too many wrong admin tokens from your address: wait a minute"
            )
        guesses.wrong(address)
    return False


BlueprintT = TypeVar("BlueprintT", bound=Blueprint)


def counted(blueprint: BlueprintT) -> BlueprintT:
    """Count the blueprint's requests by view name, for /stats."""

    @blueprint.before_request
    def count() -> None:
        if request.endpoint:
            current_service().counts[request.endpoint.rsplit(".", 1)[-1]] += 1

    return blueprint
