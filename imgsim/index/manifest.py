"""What a version says about itself (manifest.json), as typed values.

The parts a build measures (the match labels' distances, the search depth's recall curve, the
precision choice) are dataclasses here and everywhere they are used; they become JSON only when the
manifest is written, and are read back from it in one place, ``Manifest.from_dict``, which is also
after index/migrate.py has given an older manifest today's shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from imgsim import config
from imgsim.index import migrate
from imgsim.index.matching import Thresholds
from imgsim.index.model_key import ModelKey
from imgsim.index.recall import RecallCurve

Part = TypeVar("Part")
FORMAT_VERSION = 2  # 2: a list of segments; 1: one index at the version's top (read: index/migrate.py)


@dataclass
class Agreement:
    """How one precision's vectors compare with f32's on the same photos (models/agreement.py)."""

    precision: str
    mean_cosine: float
    min_cosine: float
    top10: float  # share of each photo's 10 nearest others (in the sample) that f32 also finds
    rank1: float  # edited copies whose original comes first, at this precision
    rank1_f32: float
    seconds: float  # embedding the sample at this precision
    misses: list[str] = field(default_factory=list)  # the gates it failed, with by how much

    @property
    def passed(self) -> bool:
        return not self.misses

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agreement:
        return cls(**_known(cls, data))


@dataclass
class PrecisionRecord:
    """Why a version's vectors have their precision: what was asked, how it was decided, on which
    CPU features, and what was measured (empty when nothing had to be)."""

    asked: str
    how: str  # "asked", "kept", "given", "measured" or "f32 only"
    cpu: list[str] = field(default_factory=list)
    measured: list[Agreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "how": self.how,
            "cpu": self.cpu,
            "measured": [m.to_dict() for m in self.measured],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrecisionRecord:
        measured = [Agreement.from_dict(m) for m in data.get("measured", [])]
        return cls(data.get("asked", ""), data.get("how", ""), list(data.get("cpu", [])), measured)


@dataclass
class Manifest:
    """What a version was built from and with; written last, so its presence means complete."""

    model: str
    model_source: str  # what load_embedder was given: a backbone name, a .keras path, convae...
    model_key: ModelKey  # what the vectors depend on: they are reused only under the same key
    weights: str
    input_size: int | None
    embedding_dim: int
    reduce: str
    dims: int
    metric: config.Metric
    trees: int
    items: int
    skipped: int
    next_id: int
    collection_root: str
    dataset: str = ""  # the folder or glob given: compaction rebuilds from the same
    created_at: str = ""
    build_seconds: float = 0.0
    annoy_build_seconds: float = 0.0
    embedded_this_run: int = 0
    live_read_at: float = 0.0  # when the build read the live store: deletions before it are applied
    runtime: str = "tensorflow"  # what ran the network: tensorflow or openvino (the same vectors)
    precision: str = "f32"  # the arithmetic that made the vectors: f32, bf16 or int8 (also in the key)
    precision_choice: PrecisionRecord | None = None  # why: asked, kept or measured (how well)
    centre: str = "none"  # "mean": the collection's mean direction (centre.npy) is taken off vectors
    search_k: int = -1  # the depth queries run at: chosen for recall.target, 0 = exact, -1 = trees * k
    recall: RecallCurve | None = None  # what the depth was chosen on (None: not measured)
    thresholds: Thresholds | None = None  # distances of the match labels (None: not calibrated)
    engine: str = "local"  # where this run embedded: in process, or on Ray (actors, nodes)
    engine_actors: int = 0
    engine_nodes: int = 1
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this imgsim does not know, kept as they are

    @property
    def recall_target(self) -> float | None:
        """The recall the depth was tuned for, None where it was not measured."""
        return self.recall.target if self.recall is not None else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = migrate.manifest(data)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["model_key"] = ModelKey.parse(data["model_key"])
        values["precision_choice"] = _part(PrecisionRecord.from_dict, data.get("precision_choice"))
        values["recall"] = _part(RecallCurve.from_dict, data.get("recall"))
        values["thresholds"] = _part(Thresholds.from_dict, data.get("thresholds"))
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """As manifest.json holds it: a part not measured is an empty object, as it always was."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data["model_key"] = str(self.model_key)
        data["precision_choice"] = self.precision_choice.to_dict() if self.precision_choice else {}
        data["recall"] = self.recall.to_dict() if self.recall else {}
        data["thresholds"] = self.thresholds.to_dict() if self.thresholds else {}
        return data | self.extra


def _part(read: Callable[[dict[str, Any]], Part], data: dict[str, Any] | None) -> Part | None:
    return read(data) if data is not None else None


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
