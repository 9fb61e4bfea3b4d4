"""Why the service refuses a request: a stable code and a sentence for people.

The parts of a worker (catalogue, searching, ingest, reports) raise these; only the web layer
knows HTTP, and gives each code its status (web/errors.py, STATUS).
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service cannot answer: ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message
