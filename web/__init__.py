"""The web layer: Flask blueprints over the one Service of each worker.

``init_app`` hands the Service to the app (as the Flask tutorial's ``db.init_app`` does for its
database); views reach it through ``current_service()``. Blueprints: ``search`` (the pages and
the JSON search API), ``files`` (images and thumbnails by id), ``admin`` (adding and removing
images), ``ops`` (health, stats, the API description); ``errors`` answers every failure.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, request

from service import Service

EXTENSION = "imgsim"


def init_app(app: Flask, svc: Service) -> None:
    app.extensions[EXTENSION] = svc


def service_of(app: Flask) -> Service:
    return app.extensions[EXTENSION]


def current_service() -> Service:
    return service_of(current_app)


def counted(blueprint: Blueprint) -> Blueprint:
    """Count the blueprint's requests by view name, for /stats."""

    @blueprint.before_request
    def count() -> None:
        if request.endpoint:
            current_service().counts[request.endpoint.rsplit(".", 1)[-1]] += 1

    return blueprint
