"""The HTTP contract, declared once: what every route takes and answers, as marshmallow schemas.

apiflask validates each request against these before a view runs and builds the OpenAPI document
at /openapi.json from the same classes. A field that fails answers 400 with ``{"error", "code"}``
(``errors.validation_error``): the code is the field's (``bad_k``, ``bad_id``...), the message
says what the field takes. Numbers and ids have one spelling: ASCII digits (``k=٣`` is refused).
"""

from __future__ import annotations

import math

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf
from marshmallow import EXCLUDE, ValidationError, validates_schema

from imgsim.index import queries
from imgsim.serve.web import current_service

# A ranking is served to its 1,000th result and no further (as Elasticsearch's max_result_window):
# each page asks every segment for offset + k neighbours at a depth of trees x (offset + k), so a
# deeper page would cost a scan of every segment, growing with the collection.
MAX_RESULTS = 1_000
MAX_OFFSET = MAX_RESULTS - 1
MAX_FOLDERS = 20
MAX_QUERY_PARTS = 20  # images and ids in one query
DEFAULT_MAX_K = 100  # config.Config.max_k; the document shows the default, the check reads the setting

# The error code of each field, in the order a request's fields are checked.
CODES = {
    "k": "bad_k",
    "offset": "bad_offset",
    "folder": "bad_folder",
    "box": "bad_box",
    "id": "bad_id",
    "negative_id": "bad_id",
    "min_score": "bad_min_score",
    "threshold": "bad_threshold",
    "metadata": "bad_metadata",
    "name": "bad_name",
    "path": "bad_name",
    "image": "no_image",
    "ids": "bad_id",
    "decision": "bad_decision",
    "state": "bad_state",
}


class WholeNumber(fields.Integer):
    """An integer written in ASCII digits only, within [low, high]; the messages name the field."""

    def __init__(self, name: str, low: int, high: int | None = None, **kwargs):
        self.name_, self.low, self.high = name, low, high
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] |= {"minimum": low, "maximum": high if high is not None else DEFAULT_MAX_K}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        high = self.high if self.high is not None else current_service().cfg.max_k  # this app's setting
        raw = value if isinstance(value, str) else str(value)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise ValidationError(
                f"{self.name_} must be a whole number from {self.low} to {high}, got {raw!r}"
            )
        number = int(raw)
        if not self.low <= number <= high:
            raise ValidationError(f"{self.name_} must be from {self.low} to {high}, got {number}")
        return number


class Fraction(fields.Float):
    """A number in [low, high] (NaN and infinities refused)."""

    def __init__(self, name: str, low: float, high: float, what: str, empty_is_none: bool = False, **kwargs):
        self.name_, self.low, self.high, self.what, self.empty_is_none = name, low, high, what, empty_is_none
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] |= {"minimum": low, "maximum": high}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> float | None:  # type: ignore[override]
        raw = value if isinstance(value, str) else str(value)
        if self.empty_is_none and raw == "":
            return None
        try:
            number = float(raw) if raw.isascii() else math.nan
        except ValueError:
            number = math.nan
        if not self.low <= number <= self.high:  # also refuses nan
            raise ValidationError(
                f"{self.name_} must be {self.what} from {self.low:g} to {self.high:g}, got {raw!r}"
            )
        return number


class Id(fields.Integer):
    """The id of an indexed image: ASCII digits."""

    def __init__(self, name: str, **kwargs):
        self.name_ = name
        super().__init__(metadata={"minimum": 0}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        raw = value if isinstance(value, str) else str(value)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²".isdigit(), int("²") fails
            raise ValidationError(
                f"{self.name_} must be the id of an indexed image (/search?id=17), got {raw!r}"
            )
        return int(raw)


class Folder(fields.String):
    def _deserialize(self, value, attr, data, **kwargs) -> str:
        folder = super()._deserialize(value, attr, data, **kwargs).strip("/")
        if ".." in folder.split("/") or len(folder) > 500:
            raise ValidationError("a folder is a path inside the collection, without '..'")
        return folder


class Box(fields.String):
    def _deserialize(self, value, attr, data, **kwargs) -> queries.Box | None:  # type: ignore[override]
        raw = super()._deserialize(value, attr, data, **kwargs)
        try:
            return queries.parse_box(raw) if raw else None
        except queries.BadBox as error:
            raise ValidationError(str(error)) from None


class Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # parameters this route does not know are ignored, as before


NO_ID = "give the id of an indexed image: /search?id=17"


def _ids(name: str, required: bool = False) -> fields.List:
    too_many = f"give at most {MAX_QUERY_PARTS} {name} parameters"
    return fields.List(
        Id(name),
        validate=Length(min=int(required), max=MAX_QUERY_PARTS, error=too_many),
        required=required,
        error_messages={"required": NO_ID},
        metadata={"description": f"repeatable: {name}=3&{name}=17"},
    )


class Format(Lenient):
    format = fields.String(metadata={"description": "json or html; default: by the Accept header"})


class SearchParams(Format):
    """What narrows and pages a search; accepted in the query string or in the form."""

    k = WholeNumber("k", 1, metadata={"description": "number of results (default IMGSIM_K, 10)"})
    offset = WholeNumber("offset", 0, MAX_OFFSET, metadata={"description": "results to skip, for paging"})
    folder = fields.List(
        Folder(),
        validate=Length(max=MAX_FOLDERS, error=f"give at most {MAX_FOLDERS} folder parameters"),
        metadata={"description": "keep results under these folders of the collection (repeatable)"},
    )
    box = Box(metadata={"description": "x,y,w,h as fractions of the query image: search that region"})
    id = _ids("id")
    negative_id = _ids("negative_id")
    min_score = Fraction("min_score", 0.0, 1.0, "a number", metadata={"description": "drop weaker results"})

    @validates_schema
    def _within_the_served_results(self, data: dict, **kwargs) -> None:
        k, offset = data.get("k", current_service().cfg.k), data.get("offset", 0)
        if offset + k > MAX_RESULTS:
            raise ValidationError(
                f"results are served to the {MAX_RESULTS:,}th: offset + k must be at most {MAX_RESULTS}, "
                f"got {offset} + {k} (narrow the search with folder= instead)",
                field_name="offset",
            )


class SearchById(SearchParams):
    """GET /search: the same parameters, with at least one id."""

    id = _ids("id", required=True)


class SearchForm(SearchParams):
    """POST /search as a form: the image(s), and the same parameters as the query string."""

    image = fields.List(fields.File(), metadata={"description": "the query image(s)"})
    negative = fields.List(fields.File(), metadata={"description": "images to push results away from"})


NO_IMAGE = "send the image in a form field named 'image'"


class AddForm(Lenient):
    image = fields.File(
        required=True,
        error_messages={"required": NO_IMAGE, "invalid": NO_IMAGE},
        metadata={"description": "the image to add"},
    )
    metadata = fields.String(metadata={"description": "a JSON object kept with the image"})
    name = fields.String(metadata={"description": "the original file name, kept as metadata"})
    path = fields.String(metadata={"description": "the same as name"})


# ---- answers ----


class Error(Schema):
    error = fields.String(required=True)
    code = fields.String(required=True)


class Hit(Schema):
    id = fields.Integer(required=True)
    path = fields.String(required=True, metadata={"description": "relative to the collection folder"})
    url = fields.String(required=True)
    thumbnail = fields.String()
    distance = fields.Float(required=True, metadata={"description": "Annoy distance, angular: sqrt(2-2cos)"})
    score = fields.Float(required=True, metadata={"description": "similarity 0..1"})
    match = fields.String(
        required=True,
        allow_none=True,
        validate=OneOf(["duplicate", "same_scene", "similar", "related", "weak"]),
        metadata={
            "description": "duplicate: a verified copy; same_scene: another photo of the query's "
            "scene, verified by local features; similar, related, weak: the likeness against the "
            "model's reference (null where the model has none)"
        },
    )
    likeness = fields.Float(
        allow_none=True,
        metadata={"description": "cosine distance of the full embeddings of the query and the result"},
    )
    verified = fields.Dict(
        allow_none=True,
        metadata={
            "description": "where the result lies in the query, verified by local features (the "
            "same picture for match duplicate, the same scene for same_scene): inliers, turn, "
            "scale, mirrored, region_in_query and query_in_region (polygons in each image's "
            "pixels), query_coverage and result_coverage"
        },
    )


class IndexInfo(Schema):
    model = fields.String()
    items = fields.Integer()
    built_at = fields.String()
    version = fields.String()


class Legend(Schema):
    similar = fields.Float(metadata={"description": "the lowest cosine of full embeddings that is similar"})
    related = fields.Float(metadata={"description": "the lowest that is related"})
    reference = fields.String(metadata={"description": "the labelled photos the lines were measured on"})


class SearchResult(Schema):
    query = fields.Dict(required=True, metadata={"description": "what was searched: upload, id or combined"})
    k = fields.Integer(required=True)
    results = fields.List(fields.Nested(Hit), required=True)
    index = fields.Nested(IndexInfo, required=True)
    took_ms = fields.Float(required=True)
    min_score = fields.Float(required=True)
    matches = fields.Nested(Legend, required=True, allow_none=True)
    nothing_similar = fields.Boolean(required=True)
    offset = fields.Integer(required=True)
    folders = fields.List(fields.String(), required=True)
    more = fields.Boolean(required=True)
    truncated = fields.Boolean(required=True)
    next_offset = fields.Integer(required=True, allow_none=True)


class Added(Schema):
    id = fields.Integer(required=True)
    path = fields.String(required=True)
    url = fields.String(required=True)
    metadata = fields.Dict(required=True)


class Deleted(Schema):
    deleted = fields.Integer(required=True)
    path = fields.String(required=True)


class VerifiedMatch(Schema):
    """How a copy matches the copy to keep (the copy is the query, the keeper the result)."""

    inliers = fields.Integer(required=True)
    turn = fields.Float(required=True, metadata={"description": "degrees, counter-clockwise"})
    scale = fields.Float(required=True)
    region_in_query = fields.List(fields.List(fields.Float()), required=True)
    query_in_region = fields.List(fields.List(fields.Float()), required=True)
    query_coverage = fields.Float(required=True)
    result_coverage = fields.Float(required=True)
    a_gray = fields.Boolean(required=True)
    b_gray = fields.Boolean(required=True)
    agreement = fields.Float(
        allow_none=True,
        metadata={
            "description": "share of the places where the two pictures look the same beyond the "
            "matched points (at least 0.70 for a copy; null where it could not be told)"
        },
    )
    found_by = fields.String(
        validate=OneOf(["hash", "features", "piece"]),
        metadata={
            "description": "what proposed the pair where the embedding's nearest within its reach did "
            "not: a near perceptual hash, the local features the two share, or one of its 20 nearest "
            "whose file is a piece cut out of the other pixel for pixel (absent: the embedding)"
        },
    )
    recoloured = fields.Boolean(
        metadata={
            "description": "true where one's colours are the other's changed (a hue shift, sepia, "
            "more or less saturated colour)"
        }
    )
    a_overlaid = fields.Boolean(
        metadata={
            "description": "true where the query carries something laid over the picture (a "
            "watermark, a sticker, text): its own places agree less with the other than the other's"
        }
    )
    b_overlaid = fields.Boolean(metadata={"description": "the same of the result"})
    framed = fields.Boolean(
        metadata={
            "description": "true where the one that holds the other's picture wholly holds it in a "
            "frame (a border, a caption bar, an app's window), not as the rest of a larger photo"
        }
    )
    taken_apart_s = fields.Float(
        allow_none=True,
        metadata={
            "description": "seconds between the two files' EXIF capture times (null: not both hold "
            "one); two files taken apart are two shots, a `similar` group"
        },
    )


class Health(Schema):
    status = fields.String(required=True, validate=OneOf(["ok", "unavailable"]))
    version = fields.String()
    items = fields.Integer()
    reason = fields.String(allow_none=True)
    compaction = fields.String(metadata={"description": "present when background compactions fail"})
    refused = fields.String(
        metadata={"description": "present when a newer version failed to load: this one still serves"}
    )


class Stats(Schema):
    worker_pid = fields.Integer()
    uptime_s = fields.Float()
    requests = fields.Dict()
    index = fields.Dict(allow_none=True)
    query_precision = fields.String(
        allow_none=True, metadata={"description": "what this worker's queries run in: f32, bf16 or int8"}
    )
    load_error = fields.String(allow_none=True)


def validation_message(detail: dict) -> tuple[str, str]:
    """The code and message of the first failing field of a validation error's detail."""
    located = all(isinstance(value, dict) for value in detail.values())  # webargs: {location: {field: ...}}
    fields_ = {n: p for location in detail.values() for n, p in location.items()} if located else detail
    name = min(fields_, key=lambda n: list(CODES).index(n) if n in CODES else len(CODES))
    problem = fields_[name]
    while not isinstance(problem, str):  # {"id": {0: ["..."]}} or {"k": ["..."]}
        problem = next(iter(problem.values())) if isinstance(problem, dict) else problem[0]
    return CODES.get(name, f"bad_{name}"), problem
