"""The Annoy index: build it, open it memory-mapped, query it; and search it from the command line.

    python ann.py QUERY... [--k 5] [--json] [--plot OUT_DIR]
    python ann.py --map OUT.png        (a t-SNE map of the indexed collection)
    python ann.py --duplicates [--threshold D] [--json]   (groups of copies in the collection)

A QUERY is an image file or a folder of them. Opening an index maps its file instead of reading
it, so every server worker shares one copy in the page cache.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

import autoencoder
import config
import duplicates
import embedders
import imaging
import plots
import runtimes
import store
import tta
import vectors as vector_math
from recall import EXACT
from vectors import distance_to_score


def build(vectors: np.ndarray, path: Path, metric: str = "angular", trees: int = 100) -> None:
    """Build an Annoy index with row numbers as item ids and save it to ``path``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    index = AnnoyIndex(vectors.shape[1], metric)
    index.set_seed(42)
    for row, vector in enumerate(vectors):
        index.add_item(row, vector)
    index.build(trees, n_jobs=-1)
    index.save(str(path))
    index.unload()


def load(path: Path, dims: int, metric: str = "angular") -> AnnoyIndex:
    """Open a saved index memory-mapped (shared between processes, nothing read up front)."""
    index = AnnoyIndex(dims, metric)
    index.load(str(path), prefault=False)
    return index


def query(index: AnnoyIndex, vector: np.ndarray, k: int, search_k: int = -1) -> tuple[list[int], list[float]]:
    """Rows and distances of the ``k`` approximate nearest neighbours, nearest first."""
    return index.get_nns_by_vector(
        np.asarray(vector, dtype=np.float32).tolist(), k, search_k=search_k, include_distances=True
    )


CENTRE_FILE = "centre.npy"


@dataclass
class Hit:
    id: int
    path: str
    distance: float
    score: float


@dataclass
class SearchIndex:
    """One published index version, opened for querying."""

    version: Path
    manifest: store.Manifest
    items: list[store.Item]
    annoy: AnnoyIndex
    reducer: autoencoder.Reducer | None
    centre: np.ndarray | None = None  # the collection's mean direction, taken off every vector
    rows_by_id: dict[int, int] = field(init=False, repr=False)
    _matrix: np.ndarray | None = field(default=None, init=False, repr=False)  # for exact search
    _norms: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rows_by_id = {item.id: row for row, item in enumerate(self.items)}

    @property
    def metric(self) -> str:
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

    def stored_vectors(self) -> np.ndarray:
        return np.array([self.annoy.get_item_vector(row) for row in range(len(self.items))], np.float32)

    def search(self, vector: np.ndarray, k: int, search_k: int = -1) -> list[Hit]:
        """Nearest items to one embedding (full, unreduced vector)."""
        return self.search_reduced(self.to_index_space(np.asarray(vector)[None, :])[0], k, search_k)

    def search_reduced(self, vector: np.ndarray, k: int, search_k: int = -1) -> list[Hit]:
        """Nearest items to a vector already in the index's space (e.g. one read back from it)."""
        rows, distances = self.nearest_rows(vector, k, search_k)
        return [
            Hit(self.items[r].id, self.items[r].path, float(d), distance_to_score(d, self.metric))
            for r, d in zip(rows, distances, strict=True)
        ]

    @functools.cached_property
    def folders(self) -> list[str]:
        """The collection's top-level folders, for narrowing a search to one of them."""
        return sorted({item.path.split("/", 1)[0] for item in self.items if "/" in item.path})

    def depth(self, search_k: int = -1) -> int:
        """The search_k a query runs with: as given, else the one the build chose for its target."""
        return self.manifest.search_k if search_k == -1 else search_k

    def nearest_rows(self, vector: np.ndarray, k: int, search_k: int = -1) -> tuple[list[int], list[float]]:
        """Rows and distances of the k nearest items, by Annoy or, at depth EXACT, by every vector."""
        k = min(k, len(self.items))
        depth = self.depth(search_k)
        if depth != EXACT:  # a long list needs at least Annoy's own depth for its length
            return query(self.annoy, vector, k, depth if depth == -1 else max(depth, self.manifest.trees * k))
        if self._matrix is None:  # chosen only for collections where this is small and fast
            self._matrix = self.stored_vectors()
            self._norms = vector_math.row_norms(self._matrix)
        found = vector_math.distances(self._matrix, np.asarray(vector, np.float32), self.metric, self._norms)
        rows = vector_math.smallest(found, k)
        return rows.tolist(), found[rows].tolist()


def open_index(index_dir: Path) -> SearchIndex:
    """Open the version that ``current`` points to. Raises store.IndexMissing if none."""
    version = store.current_version(index_dir)
    raw = store.read_json(version / "manifest.json")
    if raw.get("format_version") != store.FORMAT_VERSION:
        raise store.IndexMissing(
            f"{version} has index format {raw.get('format_version')}, "
            f"this imgsim reads {store.FORMAT_VERSION}: rebuild it"
        )
    manifest = store.Manifest.from_dict(raw)
    annoy = load(version / "index.ann", manifest.dims, manifest.metric)
    reducer = autoencoder.load_reducer(manifest.reduce, version)
    centre = np.load(version / CENTRE_FILE) if manifest.centre == "mean" else None
    return SearchIndex(version, manifest, store.read_items(version), annoy, reducer, centre)


def _query_files(queries: list[str]) -> list[Path]:
    files: list[Path] = []
    for query_path in map(Path, queries):
        if query_path.is_dir():
            files.extend(sorted(p for p in query_path.rglob("*") if p.is_file() and imaging.is_image_path(p)))
        else:
            files.append(query_path)
    return files


def find_duplicates(index: SearchIndex, threshold: float | None = None, hidden=(), bar: bool = False):
    """duplicates.find_groups over an opened index: its neighbours, its calibrated distance."""
    from tqdm import tqdm

    limit = duplicates.threshold_of(index.manifest.thresholds, threshold)
    # a copy is among an item's very nearest: Annoy's own depth finds it, at a fraction of the time
    k = duplicates.NEIGHBOURS + 1
    depth = EXACT if index.depth() == EXACT else index.manifest.trees * k
    neighbours = lambda row: index.nearest_rows(index.stored_vector(row), k, depth)  # noqa: E731
    progress = lambda rows: tqdm(rows, desc="Duplicates", unit="img", disable=not bar)  # noqa: E731
    vector = index.stored_vector
    distance = lambda a, b: float(vector_math.distances(vector(a)[None, :], vector(b), index.metric)[0])  # noqa: E731
    root = index.collection_root
    groups = duplicates.find_groups(index.items, neighbours, limit, root, hidden, progress, distance)
    return limit, groups


def _print_duplicates(cfg: config.Config, threshold: float | None, as_json: bool) -> int:
    try:
        index = open_index(cfg.index_dir)
        limit, groups = find_duplicates(index, threshold, bar=True)
    except (store.IndexMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps({"threshold": limit, "groups": [asdict(group) for group in groups]}, indent=1))
        return 0
    copies = sum(len(group.members) - 1 for group in groups)
    print(
        f"{len(groups)} groups of copies ({copies} copies beyond the one to keep), distance <= {limit:.4f}:"
    )
    for group in groups:
        print(f"- {group.kind}: {group.reason}")
        for member in group.members:
            mark = "keep" if member.id == group.keep else "    "
            print(f"  {mark} {member.id:>7}  {member.pixels:>10,} px  {member.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Find the indexed images most similar to each QUERY image.",
        epilog="Example: python ann.py photo.jpg --k 5 --plot results/",
    )
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="image file or folder of images")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--plot", metavar="OUT_DIR", help="write one PNG per query with its results")
    parser.add_argument("--map", metavar="OUT.png", help="draw a t-SNE map of the whole indexed collection")
    parser.add_argument("--duplicates", action="store_true", help="list groups of copies in the collection")
    parser.add_argument(
        "--threshold", type=float, metavar="D",
        help="with --duplicates: distance under which photos are copies (default: the index's own)",
    )  # fmt: skip
    config.add_flags(parser, "index_dir", "k", "search_k", "tta", "runtime", "model_cache")
    args, cfg = config.parse_args(parser, argv)
    if not args.queries and not args.map and not args.duplicates:
        parser.error("give QUERY images, --map OUT.png or --duplicates")
    if args.threshold is not None and not args.duplicates:
        parser.error("--threshold goes with --duplicates")
    config.quiet_tensorflow()
    if args.duplicates:
        return _print_duplicates(cfg, args.threshold, args.json)
    if args.map:
        try:
            plots.draw_map(open_index(cfg.index_dir), Path(args.map))
        except (store.IndexMissing, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"map: {args.map}", file=sys.stderr if args.json else sys.stdout)
        if not args.queries:
            return 0
    try:
        index = open_index(cfg.index_dir)
        embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
    except Exception as error:  # missing index or model: one clear line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = _query_files(args.queries)
    if not files:
        print("error: no query images found", file=sys.stderr)
        return 2
    if args.plot:
        Path(args.plot).mkdir(parents=True, exist_ok=True)
    answers, failures = [], 0
    for query_file in files:
        try:
            image = imaging.open_rgb(query_file, cfg.max_image_pixels, embedder.decode_side)
        except imaging.UnreadableImage as error:
            failures += 1
            answers.append({"query": str(query_file), "error": str(error)})
            if not args.json:
                print(f"{query_file}: cannot read: {error}", file=sys.stderr)
            continue
        vectors = embedder.embed_images(tta.variants(image, cfg.tta))
        hits = list(tta.best_orientation([index.search(vector, cfg.k, cfg.search_k) for vector in vectors]))
        answers.append({"query": str(query_file), "results": [asdict(h) for h in hits]})
        if not args.json:
            print(f"{query_file}:")
            for rank, hit in enumerate(hits, 1):
                print(f"  {rank:>3}. {hit.distance:.4f}  {hit.path}")
        if args.plot:
            out = Path(args.plot) / f"{query_file.stem}_results.png"
            plots.plot_results(query_file, image, hits, index.collection_root, out)
            if not args.json:
                print(f"  plot: {out}")
    if args.json:
        print(json.dumps(answers, indent=1))
    return 1 if failures == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
