"""Every failure answered the same way: a 4xx (or 500) with ``{"error", "code"}`` for programs and a
friendly page for people, never a stack trace."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from service import ServiceError
from web import current_service

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def wants_json() -> bool:
    """Whether the client is a program (JSON) rather than a browser (HTML)."""
    fmt = request.args.get("format")  # never the form: an error handler must not parse the body
    if fmt in ("json", "html"):
        return fmt == "json"
    if request.path.startswith(("/images", "/thumbs", "/healthz", "/stats", "/openapi")):
        return True
    if request.method == "POST" and request.mimetype not in FORM_TYPES:
        return True  # a raw image body comes from a program, not from the page
    if not request.accept_mimetypes:
        return True  # programs often send no Accept header; browsers always do
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json"


def service_error(error: ServiceError):
    current_service().counts["errors"] += 1
    if wants_json():
        return jsonify({"error": error.message, "code": error.code}), error.status
    return render_template("error.html", error=error), error.status


def http_error(error: HTTPException):
    if error.code == 413:
        limit = current_service().cfg.max_upload_bytes
        return service_error(
            ServiceError(413, "too_large", f"the upload is over the limit of {limit:,} bytes")
        )
    code = (error.name or "error").lower().replace(" ", "_")
    return service_error(ServiceError(error.code or 400, code, error.description or code))


def unexpected(error: Exception):
    current_service().logger.exception("unexpected error")
    return service_error(
        ServiceError(500, "internal", "something went wrong on our side; it has been logged")
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
