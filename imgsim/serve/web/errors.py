"""Every failure answered the same way: a 4xx (or 500) with ``{"error", "code"}`` for programs and a
friendly page for people, never a stack trace."""

from __future__ import annotations

import time
from dataclasses import dataclass

from apiflask import APIFlask, HTTPError
from flask import current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from imgsim.serve.refusals import ServiceError
from imgsim.serve.web import current_service
from imgsim.serve.web.schemas import validation_message

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
# The HTTP status of every refusal, by its code: the one place that knows HTTP (the parts raise
# codes, serve/refusals.py). Codes from werkzeug's and apiflask's own errors keep their status.
STATUS = {
    "bad_box": 400,
    "bad_decision": 400,
    "bad_id": 400,
    "bad_metadata": 400,
    "empty_body": 400,
    "no_image": 400,
    "not_an_image": 400,
    "too_many_images": 400,
    "unauthorized": 401,
    "disabled": 403,
    "file_missing": 404,
    "outside_collection": 404,
    "unknown_id": 404,
    "unknown_decision": 404,
    "empty_index": 409,
    "no_index": 409,
    "not_calibrated": 409,
    "too_few_images": 409,
    "too_many_for_page": 409,
    "too_large": 413,
    "too_many_pixels": 413,
    "too_many_guesses": 429,
    "internal": 500,
    "busy": 503,
    "cannot_store": 507,
}  # fmt: skip (grouped by status, as a table reads)


@dataclass(frozen=True)
class Refusal:
    """What an error answer says: its status, code and message (the page reads them too)."""

    status: int
    code: str
    message: str


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
    return answer(Refusal(STATUS[error.code], error.code, error.message))


RETRY_AFTER_S = 5  # what a 503 asks the client to wait before trying again


def answer(refusal: Refusal):
    current_service().counts["errors"] += 1
    headers = {"Retry-After": str(RETRY_AFTER_S)} if refusal.status == 503 else {}
    if wants_json():
        return jsonify({"error": refusal.message, "code": refusal.code}), refusal.status, headers
    return render_template("error.html", error=refusal), refusal.status, headers


def http_error(error: HTTPException):
    if error.code == 413:
        drain_body()
        return answer(Refusal(413, "too_large", too_large_message()))
    code = code_of(error.name)
    return answer(Refusal(error.code or 400, code, error.description or code))


def code_of(reason: str | None) -> str:
    """A stable code from an HTTP reason phrase: "Not Found" -> not_found."""
    return (reason or "error").lower().replace(" ", "_")


def declared_error(error: HTTPError):
    """apiflask's answer to a request its schemas refuse, in our shape: the field's code and message."""
    if isinstance(error.detail, dict) and error.detail:
        code, message = validation_message(error.detail)
    else:
        code, message = code_of(error.message), error.message or "error"
    return answer(Refusal(error.status_code, code, message))


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
    return answer(Refusal(500, "internal", "something went wrong on our side; it has been logged"))


def init_app(app: APIFlask) -> None:
    app.error_processor(declared_error)
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
