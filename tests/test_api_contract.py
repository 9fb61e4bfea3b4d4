"""The served OpenAPI document is the contract: Schemathesis generates requests from /openapi.json
against the app and fails on any 5xx and on any answer the document does not describe.

Seeded and bounded (hypothesis derandomised, a fixed number of examples per route), so a run sends
the same requests every time. The admin routes are exercised with the token, so that their
answers past the authentication are checked too.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpers import TOKEN

pytestmark = pytest.mark.slow  # Schemathesis' generated requests

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_ROUTE = 20
ADMIN_HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_one_the_document_describes(app, mode):
    """Valid requests (positive) and requests that break the document (negative), every route."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    sent: Counter[str] = Counter()
    unbreakable: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call_and_validate(headers=ADMIN_HEADERS, checks=CHECKS)
            sent[f"{case.method} {case.path} {response.status_code}"] += 1

        try:
            check()
        except Unsatisfiable:  # negative: every input of the route is a free string (or it has none)
            assert mode is GenerationMode.NEGATIVE, f"no valid request for {operation.label}"
            unbreakable.append(operation.label)
    print(f"\n{mode.value}: {sum(sent.values())} requests", dict(sorted(sent.items())), "none:", unbreakable)
    assert len({key.rsplit(" ", 1)[0] for key in sent}) >= 5, "too few routes were tried"


def test_the_document_is_generated_from_the_declarations(client):
    spec = client.get("/openapi.json").get_json()
    routes = {"/", "/search", "/map", "/duplicates", "/images", "/images/{id}", "/thumbs/{id}"}
    assert routes | {"/healthz", "/stats", "/metrics"} <= set(spec["paths"])  # every route is declared
    search = spec["paths"]["/search"]
    names = {p["name"] for p in search["get"]["parameters"]}
    assert {"k", "offset", "folder", "box", "id", "negative_id", "min_score", "format"} <= names
    k = next(p for p in search["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["type"] == "integer"
    body = search["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*", "application/octet-stream"} <= set(body)
    assert spec["paths"]["/images"]["post"]["security"] == [{"bearer": []}]
    assert set(spec["components"]["schemas"]["Error"]["properties"]) == {"error", "code"}
    bad = spec["paths"]["/search"]["get"]["responses"]["400"]["content"]
    assert bad["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"} and "text/html" in bad
    assert client.get("/docs").status_code == 200


def test_the_docs_page_loads_nothing_from_elsewhere(client):
    """/docs loaded the jsdelivr CDN's latest Swagger UI, without an integrity hash (item 13)."""
    import re

    page = client.get("/docs")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
    assert sources and all(source.startswith("/") for source in sources), sources
    assert "https:" not in page.headers["Content-Security-Policy"]
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert client.get("/docs/assets/index.html").status_code == 404  # the three files only
    assert "/docs/assets/{name}" not in client.get("/openapi.json").get_json()["paths"]


def test_a_refused_parameter_keeps_its_code_and_message(client):
    answer = client.get("/search?id=1&k=abc")
    assert answer.status_code == 400
    refused = {"error": "k must be a whole number from 1 to 100, got 'abc'", "code": "bad_k"}
    assert answer.get_json() == refused
    assert client.get("/search?id=%D9%A3").get_json()["code"] == "bad_id"  # an Arabic-Indic 3 is no id
    assert client.get("/search?id=1&k=%D9%A3").get_json()["code"] == "bad_k"
    assert client.get("/search?id=1&offset=" + "9" * 5000).get_json()["code"] == "bad_offset"


def test_numbers_in_form_fields_have_one_spelling_and_a_bounded_length(client):
    """A 5000-digit id, offset or negative_id was a 500 (int() refuses over 4300 digits)."""
    huge = "9" * 5000
    for field, code in (
        ("id", "bad_id"),
        ("offset", "bad_offset"),
        ("negative_id", "bad_id"),
        ("k", "bad_k"),
    ):
        reply = client.post("/search", data={field: huge}, content_type="multipart/form-data")
        assert (reply.status_code, reply.get_json()["code"]) == (400, code), field
    assert client.get("/images/%D9%A3").status_code == 404  # an Arabic-Indic 3 is no id in a URL either
