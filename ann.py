"""The Annoy index: build it, open it memory-mapped, query it; and search it from the command line.

    python ann.py QUERY... [--k 5] [--json] [--plot OUT_DIR]
    python ann.py --map OUT.png        (a t-SNE map of the indexed collection)

A QUERY is an image file or a folder of them. Opening an index maps its file instead of reading
it, so every server worker shares one copy in the page cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

import config
import imaging
import store


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


def distance_to_score(distance: float, metric: str) -> float:
    """A similarity in 0..1 (1 = identical direction) that people can read."""
    if metric == "angular":  # Annoy's angular distance is sqrt(2 - 2 cos)
        return max(0.0, min(1.0, 1.0 - distance * distance / 2.0))
    if metric == "dot":
        return distance
    return 1.0 / (1.0 + distance)


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
    manifest: dict
    items: list[dict]
    annoy: AnnoyIndex
    reducer: object  # autoencoder.Reducer or None

    def __post_init__(self) -> None:
        self.rows_by_id = {item["id"]: row for row, item in enumerate(self.items)}

    def to_index_space(self, vectors: np.ndarray) -> np.ndarray:
        """Full embeddings (rows) as the index stores them: reduced, if the index is."""
        vectors = np.asarray(vectors, np.float32)
        return vectors if self.reducer is None else self.reducer(vectors)

    def search(self, vector: np.ndarray, k: int, search_k: int = -1) -> list[Hit]:
        """Nearest items to one embedding (full, unreduced vector)."""
        return self.search_reduced(self.to_index_space(np.asarray(vector)[None, :])[0], k, search_k)

    def search_reduced(self, vector: np.ndarray, k: int, search_k: int = -1) -> list[Hit]:
        """Nearest items to a vector already in the index's space (e.g. one read back from it)."""
        rows, distances = query(self.annoy, vector, min(k, len(self.items)), search_k)
        metric = self.manifest["metric"]
        return [
            Hit(self.items[r]["id"], self.items[r]["path"], float(d), distance_to_score(d, metric))
            for r, d in zip(rows, distances, strict=True)
        ]

    @property
    def collection_root(self) -> Path:
        return Path(self.manifest["collection_root"])


def open_index(index_dir: Path) -> SearchIndex:
    """Open the version that ``current`` points to. Raises store.IndexMissing if none."""
    import autoencoder

    version = store.current_version(index_dir)
    manifest = store.read_manifest(version)
    if manifest.get("format_version") != store.FORMAT_VERSION:
        raise store.IndexMissing(
            f"{version} has index format {manifest.get('format_version')}, "
            f"this imgsim reads {store.FORMAT_VERSION}: rebuild it"
        )
    items = store.read_json(version / "items.json")
    annoy = load(version / "index.ann", manifest["dims"], manifest["metric"])
    reducer = autoencoder.load_reducer(manifest["reduce"], version)
    return SearchIndex(version, manifest, items, annoy, reducer)


def query_embedder(manifest: dict, version: Path):
    """The exact model an index was built with, to embed queries the same way."""
    import autoencoder
    import img2vec

    weights = manifest.get("weights", "imagenet")
    source = manifest["model_source"]
    trained = source in autoencoder.PIXEL_MODELS  # trained on the collection, stored in the version
    if trained:
        source = str(Path(version) / autoencoder.ENCODER_FILE)
    # the model key ends with the input-size setting it was built with (0 = the model's own)
    size = int(manifest["model_key"].rsplit(":", 1)[1])
    embedder = img2vec.load_embedder(source, None if weights == "none" else weights, size)
    if trained:
        embedder = dataclasses.replace(
            embedder,
            name=manifest["model_source"],
            source=manifest["model_source"],
            trained_files=Path(version),
        )
    if embedder.key != manifest["model_key"]:
        raise img2vec.WeightsUnavailable(
            f"the model {manifest['model_source']} changed since the index was built; rebuild the "
            "index with img2vec.py"
        )
    return embedder


def _query_files(queries: list[str]) -> list[Path]:
    files: list[Path] = []
    for query_path in map(Path, queries):
        if query_path.is_dir():
            files.extend(sorted(p for p in query_path.rglob("*") if p.is_file() and imaging.is_image_path(p)))
        else:
            files.append(query_path)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Find the indexed images most similar to each QUERY image.",
        epilog="Example: python ann.py photo.jpg --k 5 --plot results/",
    )
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="image file or folder of images")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--plot", metavar="OUT_DIR", help="write one PNG per query with its results")
    parser.add_argument("--map", metavar="OUT.png", help="draw a t-SNE map of the whole indexed collection")
    config.add_flags(parser, "index_dir", "k", "search_k")
    args = parser.parse_args(argv)
    if not args.queries and not args.map:
        parser.error("give QUERY images, or --map OUT.png")
    cfg = config.load(args=args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.map:
        import plots

        try:
            plots.draw_map(open_index(cfg.index_dir), Path(args.map))
        except (store.IndexMissing, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"map: {args.map}")
        if not args.queries:
            return 0
    try:
        index = open_index(cfg.index_dir)
        embedder = query_embedder(index.manifest, index.version)
    except Exception as error:  # missing index or model: one clear line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = _query_files(args.queries)
    if not files:
        print("error: no query images found", file=sys.stderr)
        return 2
    if args.plot:
        import plots

        Path(args.plot).mkdir(parents=True, exist_ok=True)
    answers, failures = [], 0
    for query_file in files:
        try:
            image = imaging.open_rgb(query_file, cfg.max_image_pixels)
        except imaging.UnreadableImage as error:
            failures += 1
            answers.append({"query": str(query_file), "error": str(error)})
            if not args.json:
                print(f"{query_file}: cannot read: {error}", file=sys.stderr)
            continue
        hits = index.search(embedder.embed_images([image])[0], cfg.k, cfg.search_k)
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
