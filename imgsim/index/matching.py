"""Words for distances: what a result is to the query, calibrated on the collection itself.

A raw distance means nothing to a person, and its meaning changes with the model, the pooling and
the collection. Each build measures two things on its own index (see tuning.py): how far an edited
copy lies from its original (re-saved at quality 30, framed by a 20 % border: what a duplicate
looks like), and how far a photo's nearest and tenth-nearest *other* photos lie. The thresholds
come from those distributions and are stored in the manifest, so every index version labels its
results on its own terms:

- ``duplicate``: as close as a re-saved or framed copy of the same photo;
- ``similar``:   closer than the median photo's nearest neighbour;
- ``related``:   closer than the median photo's tenth-nearest neighbour;
- ``weak``:      further: shown only because k results were asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

LABELS = ("duplicate", "similar", "related", "weak")
COPY_EDITS = ("reencode_q30", "border_20")  # what a re-saved or framed copy looks like


@dataclass
class Thresholds:
    """Distances (in the index's space) at or below which a result earns each label."""

    duplicate: float
    similar: float
    related: float
    evidence: dict = field(default_factory=dict)  # the distributions' percentiles they came from

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds | None:
        """None for an index built before thresholds existed: its results carry no label."""
        return cls(**data) if data else None


def _percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (1, 5, 50, 95, 99)} | {
        "count": int(len(values))
    }


def calibrate(copies: np.ndarray, nearest: np.ndarray, tenth: np.ndarray) -> Thresholds:
    """Thresholds from the distances of copies to their originals, and of photos to their nearest
    and tenth-nearest other photos.

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
    similar = max(duplicate, float(np.median(nearest)))
    related = max(similar, float(np.median(tenth)))
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
    return Thresholds(round(duplicate, 4), round(similar, 4), round(related, 4), evidence)


def word(distance: float, verified: bool, thresholds: Thresholds | None) -> str | None:
    """A result's label as every answer gives it (the service, ``ann.py --json``): ``duplicate``
    for a verified copy, else its distance's label."""
    return "duplicate" if verified else label(distance, thresholds)


def label(distance: float, thresholds: Thresholds | None) -> str | None:
    """The label of one result; None where the index has no thresholds."""
    if thresholds is None:
        return None
    limits = (thresholds.duplicate, thresholds.similar, thresholds.related)
    return next((name for name, limit in zip(LABELS, limits, strict=False) if distance <= limit), "weak")
