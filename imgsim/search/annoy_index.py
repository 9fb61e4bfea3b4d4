"""The Annoy index: build it, open it memory-mapped, query it.

Opening an index maps its file instead of reading it, so every server worker shares one copy in the
page cache. ``imgsim search`` (cli/search.py, ``python ann.py``) is its command line.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from annoy import AnnoyIndex

from imgsim import config, durable
from imgsim.images import geometry
from imgsim.index import migrate, segments, store
from imgsim.index import vectors as vector_math
from imgsim.index.depth import DEFAULT_SEARCH_K, TUNED, Depth
from imgsim.index.manifest import Manifest
from imgsim.index.vectors import distance_to_score
from imgsim.models import reducers

build = segments.build_annoy  # one Annoy file: seeded, every core


def load(path: Path, dims: int, metric: config.Metric = "angular") -> AnnoyIndex:
    """Open a saved index memory-mapped (shared between processes, nothing read up front)."""
    index = AnnoyIndex(dims, metric)
    index.load(str(path), prefault=False)
    return index


def query(
    index: AnnoyIndex, vector: np.ndarray, k: int, search_k: int = DEFAULT_SEARCH_K
) -> tuple[list[int], list[float]]:
    """Rows and distances of the ``k`` approximate nearest neighbours, nearest first."""
    return index.get_nns_by_vector(
        np.asarray(vector, dtype=np.float32).tolist(), k, search_k=search_k, include_distances=True
    )


CENTRE_FILE = "centre.npy"


class NearestRows(Protocol):
    """What a SearchIndex asks of the index over its rows: a version's segments.Segments, or one
    Annoy file (OneFile: the benches' indexes)."""

    def nearest(self, vector: np.ndarray, k: int, depth: Depth = TUNED) -> tuple[list[int], list[float]]: ...

    def get_item_vector(self, row: int) -> list[float]: ...

    def raw_vector(self, row: int) -> np.ndarray | None: ...


@dataclass
class OneFile:
    """One bare Annoy file as NearestRows, its ``tuned`` search_k the build's depth (as a
    segment's); no raw vectors kept."""

    annoy: AnnoyIndex
    trees: int
    tuned: int = DEFAULT_SEARCH_K

    def nearest(self, vector: np.ndarray, k: int, depth: Depth = TUNED) -> tuple[list[int], list[float]]:
        return query(self.annoy, vector, k, depth.search_k(self.tuned))

    def get_item_vector(self, row: int) -> list[float]:
        return self.annoy.get_item_vector(row)

    def raw_vector(self, row: int) -> np.ndarray | None:
        return None

    def unload(self) -> None:
        self.annoy.unload()


@dataclass
class Hit:
    id: int
    path: str
    distance: float
    score: float
    verified: geometry.Match | None = None  # the same picture as the query: its match (verification.py)
    likeness: float | None = None  # cosine distance of the full embeddings (match labels), if known
    match: str | None = None  # its label: duplicate, same_scene, similar, related or weak (index/matching.py)
    scene: geometry.Match | None = None  # the same scene as the query: its match (images/same_scene.py)

    @property
    def region(self) -> geometry.Match | None:
        """The match that places the result in the query, of either level: what answers call
        ``verified`` (its ``match`` label says which level)."""
        return self.verified if self.verified is not None else self.scene

    def to_dict(self) -> dict:
        """As ``imgsim search --json`` prints a result (the verified match as the API gives it)."""
        data = asdict(self)
        del data["scene"]
        data["verified"] = self.region.to_dict() if self.region is not None else None
        return data


@dataclass
class SearchIndex:
    """One published index version, opened for querying."""

    version: Path
    manifest: Manifest
    items: list[store.Item]
    annoy: NearestRows  # a version's segments; one Annoy file in benches
    reducer: reducers.Reducer | None
    centre: np.ndarray | None = None  # the collection's mean direction, taken off every vector
    rows_by_id: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rows_by_id = {item.id: row for row, item in enumerate(self.items)}

    @property
    def metric(self) -> config.Metric:
        return self.manifest.metric

    @property
    def collection_root(self) -> Path:
        return Path(self.manifest.collection_root)

    def to_index_space(self, vectors: np.ndarray) -> np.ndarray:
        """Full embeddings (rows) as the index stores them: reduced, if the index is."""
        vectors = np.asarray(vectors, np.float32)
        if self.centre is not None:
            vectors = vector_math.centred(vectors, self.centre)
        return vectors if self.reducer is None else self.reducer(vectors)

    def stored_vector(self, row: int) -> np.ndarray:
        """The vector of one row as the index holds it (reduced, if the index is)."""
        return np.array(self.annoy.get_item_vector(row), np.float32)

    def raw_vector(self, row: int) -> np.ndarray | None:
        """A row's full embedding, before centring or reduction (None in a bare Annoy file)."""
        return self.annoy.raw_vector(row)

    def stored_vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        """Several rows' vectors as the index holds them, mapped from their memory-mapped full
        embeddings where the index keeps them (Annoy hands out one vector at a time, as a Python
        list: 1.6 ms for 40 of 1280 dimensions, against 0.2 ms mapped)."""
        raw = [vector for vector in (self.raw_vector(row) for row in rows) if vector is not None]
        if rows and len(raw) == len(rows):
            return self.to_index_space(np.stack(raw)).astype(np.float32)
        return np.stack([self.stored_vector(row) for row in rows]) if rows else np.zeros((0, 0), np.float32)

    def stored_vectors(self) -> np.ndarray:
        return np.array([self.annoy.get_item_vector(row) for row in range(len(self.items))], np.float32)

    def search(self, vector: np.ndarray, k: int, depth: Depth = TUNED) -> list[Hit]:
        """Nearest items to one embedding (full, unreduced vector)."""
        return self.search_reduced(self.to_index_space(np.asarray(vector)[None, :])[0], k, depth)

    def search_reduced(self, vector: np.ndarray, k: int, depth: Depth = TUNED) -> list[Hit]:
        """Nearest items to a vector already in the index's space (e.g. one read back from it)."""
        return self.hits(*self.nearest_rows(vector, k, depth))

    def hits(self, rows: list[int], distances: Iterable[float]) -> list[Hit]:
        """Results for rows at their distances from a query."""
        return [
            Hit(self.items[r].id, self.items[r].path, float(d), distance_to_score(float(d), self.metric))
            for r, d in zip(rows, distances, strict=True)
        ]

    def segments(self) -> list[dict]:
        """Each segment's name, live and deleted rows and tuned depth (what /stats shows)."""
        parts = getattr(self.annoy, "parts", [])
        return [
            {"name": p.ref.name, "items": p.ref.live, "deleted": len(p.ref.deleted), "search_k": p.search_k}
            for p in parts
        ]

    @functools.cached_property
    def folders(self) -> list[str]:
        """The collection's top-level folders, for narrowing a search to one of them."""
        return sorted({item.path.split("/", 1)[0] for item in self.items if "/" in item.path})

    def search_k(self, depth: Depth = TUNED) -> int:
        """The search_k a query at ``depth`` gives Annoy in the version's largest segment."""
        return depth.search_k(tuned=self.manifest.search_k)

    def nearest_rows(self, vector: np.ndarray, k: int, depth: Depth = TUNED) -> tuple[list[int], list[float]]:
        """Rows and distances of the k nearest items over every segment: each at the depth tuned
        for it (TUNED), or as ``depth`` says."""
        k = min(k, len(self.items))
        return self.annoy.nearest(np.asarray(vector, np.float32), k, depth)


def open_index(index_dir: Path, check: bool = False) -> SearchIndex:
    """Open the version that ``current`` points to. Raises store.IndexMissing if none; with
    ``check`` (a serving worker), segments.CorruptSegment for a file its build did not write."""
    return open_version(store.current_version(index_dir), check=check)


def open_version(version: Path, items: list[store.Item] | None = None, check: bool = False) -> SearchIndex:
    """Open one version's folder (a build opens the one it is writing, with the items it holds)."""
    raw = durable.read_json(version / "manifest.json")
    why = migrate.unreadable(raw)
    if why is not None:
        raise store.IndexMissing(f"{version} has {why}")
    manifest = Manifest.from_dict(raw)
    annoy = segments.Segments(
        version, manifest.dims, manifest.metric, manifest.trees, manifest.search_k, check=check
    )
    reducer = reducers.load_reducer(manifest.reduce, version)
    centre = durable.read_array(version / CENTRE_FILE) if manifest.centre == "mean" else None
    items = store.read_items(version) if items is None else items
    return SearchIndex(version, manifest, items, annoy, reducer, centre)
