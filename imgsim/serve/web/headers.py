"""Security headers on every answer: no framing (the duplicates page takes the admin token), no
content sniffing, no referrer leaving the site, and a Content-Security-Policy that lets the pages
run only this service's own script. deploy/nginx.conf sets the same on what nginx serves itself."""

from __future__ import annotations

from flask import Flask, Response, request

POLICY = (
    "default-src 'self'; script-src 'self'; img-src 'self' data: blob:; connect-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)  # inline styles: the map places its points with style attributes; data: connections: the results
# page posts its inline preview (a data: URL) again for "more results" and a drawn box
# /docs is apiflask's Swagger UI: its script and style are served here (web/openapi.py), started inline
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    app.after_request(secured)


def secured(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", DOCS_POLICY if request.path == "/docs" else POLICY)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response
