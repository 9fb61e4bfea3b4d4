"""Words for results: what a result is to the query, in terms that mean the same on every collection.

- ``duplicate``: a verified copy of the query's picture (search/verification.py), nothing else;
- ``same_scene``: another photo of the query's scene or object, verified by local features under a
  looser geometry (images/same_scene.py): not the same picture, the same place or thing;
- ``similar``:   as close as photos of one kind of subject are and photos of two rarely are,
- ``related``:   closer than most photos of different subjects,
  both on a reference measured once per model on labelled photos (models/reference.py), in cosine
  distance of the full embeddings, so that no collection ranks itself;
- ``weak``:      further: shown only because k results were asked for.

A model without a reference gets no ``similar`` or ``related`` (None): a word that cannot be made
honest is dropped. The collection still calibrates one distance of its own, ``duplicate``: how far
its edited copies lie from their originals in the index's space, the reach within which a build
looks for candidate copies to verify.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

COPY_EDITS = ("reencode_q30", "border_20")  # what a re-saved or framed copy looks like


@dataclass
class Thresholds:
    """An index version's lines: ``duplicate`` in the index's space (where copies are looked for),
    ``similar`` and ``related`` in cosine distance of full embeddings (None without a reference)."""

    duplicate: float
    similar: float | None = None
    related: float | None = None
    evidence: dict = field(default_factory=dict)  # the copies' and neighbours' percentiles
    reference: dict = field(default_factory=dict)  # what similar and related were measured on

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        """As the manifest holds them (index/migrate.py reads older manifests' into this shape)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    @property
    def label_lines(self) -> tuple[float, float] | None:
        """The similar and related lines, where the model has a reference to give them."""
        if self.similar is None or self.related is None:
            return None
        return self.similar, self.related

    def with_reference(self, reference) -> Thresholds:
        """These lines with a model's reference's (models/reference.Reference, or None)."""
        if reference is None:
            return Thresholds(self.duplicate, None, None, self.evidence, {})
        found = reference.similar, reference.related
        return Thresholds(self.duplicate, *found, self.evidence, reference.to_dict())


def _percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (1, 5, 50, 95, 99)} | {
        "count": int(len(values))
    }


def calibrate(copies: np.ndarray, nearest: np.ndarray, tenth: np.ndarray) -> Thresholds:
    """The duplicate line from the distances of copies to their originals, and of photos to their
    nearest and tenth-nearest other photos (kept as evidence).

    A collection holds copies of its own, so its nearest-neighbour distances mix copies with
    different photos; only those beyond the 95th percentile of the known copies count as
    "different". The duplicate threshold lies halfway between the copies' 99th percentile and the
    different photos' 1st when the two do not overlap; where they do, it is the lower of the
    copies' 95th percentile and that 1st percentile: precision first. Where most photos' nearest
    neighbours are as close as the copies (a model that cannot tell them apart), only distances
    down at the collection's own 1st percentile count as duplicates.
    """
    copy_95, copy_99 = (float(np.percentile(copies, q)) for q in (95, 99))
    different = nearest[nearest > copy_95]
    if len(different) < len(nearest) / 2:  # the model puts copies no closer than other photos:
        duplicate = min(copy_95, float(np.percentile(nearest, 1)))  # only near-identical ones count
    else:
        different_1 = float(np.percentile(different, 1))
        duplicate = (copy_99 + different_1) / 2 if copy_99 < different_1 else min(copy_95, different_1)
    evidence = {
        name: _percentiles(values)
        for name, values in (
            ("copies", copies),
            ("nearest", nearest),
            ("different", different),
            ("tenth", tenth),
        )
        if len(values)
    }
    return Thresholds(round(duplicate, 4), evidence=evidence)


def word(
    likeness: float | None, verified: bool, thresholds: Thresholds | None, same_scene: bool = False
) -> str | None:
    """A result's label as every answer gives it (the service, ``ann.py --json``): ``duplicate``
    for a verified copy, ``same_scene`` for a photo verified to show the query's scene, else what
    its ``likeness`` (cosine distance of the full embeddings) earns; None where that cannot be said
    honestly (no reference for the model)."""
    if verified:
        return "duplicate"
    if same_scene:
        return "same_scene"
    lines = thresholds.label_lines if thresholds is not None else None
    if lines is None or likeness is None:
        return None
    similar, related = lines
    if likeness <= similar:
        return "similar"
    return "related" if likeness <= related else "weak"
