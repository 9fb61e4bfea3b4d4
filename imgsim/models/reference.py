"""What a distance means for a model, measured once on labelled photos, not on the collection.

A collection ranked against itself cannot say what "similar" means: half of all nearest neighbours
lie under the median nearest-neighbour distance whatever they show. A reference is measured once
per model (its key, without the precision: bf16 vectors agree with f32's to 0.996) on photos in
class folders: the cosine distances (1 - cosine of the full embeddings, before any centring or
reduction, so no collection's statistics enter) of pairs of the same class and of different
classes. The labels' lines are where a pair that close is SIMILAR_ODDS (RELATED_ODDS) times likelier
to be of one class than of two, against the shares of all such pairs: a ratio that does not depend
on how many classes the reference holds. The reference is stated in each index's manifest; a model
without one gets no ``similar`` or ``related`` at all (``duplicate`` is a verified copy regardless).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from imgsim.index.model_key import ModelKey
from imgsim.index.vectors import normalise

SIMILAR_ODDS = 10.0  # pairs this close: ten times likelier of one class than of two
RELATED_ODDS = 3.0
MAX_PHOTOS = 3000  # a fixed sample: 4.5 M pairs, enough for the 0.1 % tails
MIN_PHOTOS = 100  # fewer leave the lines to a handful of pairs
SHIPPED = Path(__file__).with_name("references.json")  # measured here (docs/benchmarks.md section 10)


@dataclass
class Reference:
    """The labels' lines for one model, in cosine distance of full embeddings."""

    model: str  # the model key (precision left out)
    similar: float
    related: float
    measured_on: dict = field(default_factory=dict)  # name, photos, classes, pairs
    evidence: dict = field(default_factory=dict)  # percentiles of same- and different-class pairs

    def to_dict(self) -> dict:
        return asdict(self)


def identity(model_key: ModelKey) -> str:
    """The key a reference is kept under: the model's, whatever precision runs it."""
    return str(model_key.at("f32"))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine between one full embedding ``a`` and each row of ``b`` (or one vector)."""
    b = np.atleast_2d(np.asarray(b, np.float32))
    return 1.0 - normalise(b) @ normalise(np.asarray(a, np.float32)[None, :])[0]


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (0.1, 1, 5, 50)}


def _line(distances: np.ndarray, same: np.ndarray, odds: float) -> float:
    """The largest distance d such that P(d' <= d | same) >= odds * P(d' <= d | different)."""
    order = np.argsort(distances, kind="stable")
    ordered, hit = distances[order], same[order]
    share_same = np.cumsum(hit) / max(1, int(hit.sum()))
    share_different = np.cumsum(~hit) / max(1, int((~hit).sum()))
    # at least 0.1 % of the same-class pairs below, so that a handful of copies does not decide it
    good = np.flatnonzero((share_same >= odds * share_different) & (share_same >= 0.001))
    return float(ordered[good[-1]]) if len(good) else 0.0


def measure(model_key: ModelKey, vectors: np.ndarray, labels: list[str], name: str) -> Reference:
    """The reference of a model from the full embeddings of labelled photos (ValueError where
    they are too few to say anything)."""
    if len(vectors) < MIN_PHOTOS or len(set(labels)) < 2:
        raise ValueError(
            f"a reference needs at least {MIN_PHOTOS} labelled photos in 2 classes or more, "
            f"{name} has {len(vectors)} in {len(set(labels))}"
        )
    rows = np.random.default_rng(0).permutation(len(vectors))[:MAX_PHOTOS]
    unit, classes = normalise(np.asarray(vectors, np.float32)[rows]), np.array(labels)[rows]
    upper = np.triu_indices(len(rows), 1)
    distances = (1.0 - (unit @ unit.T)[upper]).astype(np.float32)
    same = classes[upper[0]] == classes[upper[1]]
    return Reference(
        identity(model_key),
        round(_line(distances, same, SIMILAR_ODDS), 4),
        round(_line(distances, same, RELATED_ODDS), 4),
        {"name": name, "photos": len(rows), "classes": len(set(classes)), "pairs": len(distances)},
        {"same_class": percentiles(distances[same]), "different_class": percentiles(distances[~same])},
    )


def _user_file(cache: Path) -> Path:
    return Path(cache) / "references.json"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def find(model_key: ModelKey, cache: Path) -> Reference | None:
    """The reference of a model: one measured on this machine (evaluate.py --reference), else the
    one shipped with imgsim, else None."""
    wanted = identity(model_key)
    for path in (_user_file(cache), SHIPPED):
        found = _read(path).get(wanted)
        if found:
            return Reference(**found)
    return None


def save(reference: Reference, cache: Path) -> Path:
    """Keep a measured reference for later builds of the same model."""
    path = _user_file(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    known = _read(path) | {reference.model: reference.to_dict()}
    path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    return path


def describe(reference: Reference | None) -> str:
    if reference is None:
        return "none for this model: only verified copies are labelled (duplicate)"
    on = reference.measured_on
    return (
        f"similar <= {reference.similar}, related <= {reference.related} (cosine distance of full "
        f"embeddings), measured on {on.get('name')} ({on.get('photos')} photos, {on.get('classes')} classes)"
    )
