"""Every failure answered the same way: a 4xx (or 500) with ``{"error", "code"}`` for programs and a
friendly page for people, never a stack trace."""

from __future__ import annotations

import time

from apiflask import APIFlask, HTTPError
from flask import current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from imgsim.serve.service import ServiceError
from imgsim.serve.web import current_service
from imgsim.serve.web.schemas import validation_message

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
DRAIN_BYTES = 64 * 1024 * 1024  # the most of a refused upload read (and dropped) before answering
DRAIN_SECONDS = 10.0


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
        drain_body()
        return service_error(ServiceError(413, "too_large", too_large_message()))
    code = code_of(error.name)
    return service_error(ServiceError(error.code or 400, code, error.description or code))


def code_of(reason: str | None) -> str:
    """A stable code from an HTTP reason phrase: "Not Found" -> not_found."""
    return (reason or "error").lower().replace(" ", "_")


def declared_error(error: HTTPError):
    """apiflask's answer to a request its schemas refuse, in our shape: the field's code and message."""
    if isinstance(error.detail, dict) and error.detail:
        code, message = validation_message(error.detail)
    else:
        code, message = code_of(error.message), error.message or "error"
    return service_error(ServiceError(error.status_code, code, message))


def too_large_message() -> str:
    """Say which limit a 413 is about: the whole upload's, or one form field's (metadata, a name)."""
    limit = current_service().cfg.max_upload_bytes
    length = request.content_length
    if length is not None and length <= limit:
        field_limit = current_app.config["MAX_FORM_MEMORY_SIZE"]
        field = "a form field other than the image (metadata, a file name)"
        return f"{field} is over the limit of {field_limit:,} bytes"
    return f"the upload is over the limit of {limit:,} bytes"


def drain_body() -> None:
    """Read and drop the rest of a refused upload, so that the client gets to read its 413.

    A server that closes a connection with unread bytes makes the kernel reset it; a client that
    sends its whole body before reading the answer (Python's urllib, any ``Connection: close``
    client) then reports a broken pipe instead of the 413. Bounded in bytes and time: past
    DRAIN_BYTES the connection is closed unread. Only on servers that end the input stream
    themselves (gunicorn, and werkzeug for chunked bodies), where reading past the body is safe.
    """
    environ = request.environ
    length = request.content_length
    if "wsgi.input_terminated" not in environ or (length or 0) > DRAIN_BYTES:
        return
    stream, drained, deadline = environ["wsgi.input"], 0, time.monotonic() + DRAIN_SECONDS
    try:
        while drained < DRAIN_BYTES and time.monotonic() < deadline:
            chunk = stream.read(min(1 << 16, DRAIN_BYTES - drained))
            if not chunk:
                return
            drained += len(chunk)
    except (OSError, ValueError):
        return  # the client went away: nothing left to answer


def unexpected(error: Exception):
    current_service().logger.exception("unexpected error")
    return service_error(
        ServiceError(500, "internal", "something went wrong on our side; it has been logged")
    )


def init_app(app: APIFlask) -> None:
    app.error_processor(declared_error)
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
