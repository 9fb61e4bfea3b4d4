"""Pictures for people: a query beside its results, and a t-SNE map of the whole collection."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from imgsim import durable
from imgsim.images import imaging
from imgsim.index import store
from imgsim.index.vectors import normalise

MAP_FILE = store.MAP_FILE
MAP_MAX_POINTS = 3000
STRIP_SIDE = 256  # pixels a result strip needs of each image at most


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_results(query_file: Path, image, hits: list, root: Path, out_path: Path) -> None:
    """A strip: the query, then its results (ann.Hit) with their distances."""
    plt = _pyplot()
    panels = len(hits) + 1
    columns = min(panels, 6)
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title(f"query\n{query_file.name}", fontsize=9, color="tab:blue")
    for axis, (rank, hit) in zip(axes.flat[1:], enumerate(hits, 1), strict=False):
        try:
            axis.imshow(imaging.open_rgb(root / hit.path, min_side=STRIP_SIDE))
        except imaging.UnreadableImage:
            axis.text(0.5, 0.5, "missing", ha="center")
        axis.set_title(f"#{rank} d={hit.distance:.3f}\n{Path(hit.path).name}", fontsize=9)
    figure.tight_layout()
    figure.savefig(out_path, dpi=80)
    plt.close(figure)


def class_of(path: str) -> str | None:
    return path.split("/", 1)[0] if "/" in path else None


def collection_classes(items: list[store.Item]) -> list[str] | None:
    """The class sub-folders, when every item sits in one and there are 2 to 20 of them."""
    classes = {class_of(item.path) for item in items}
    named = {name for name in classes if name is not None}
    if len(named) < len(classes) or not 2 <= len(named) <= 20:
        return None
    return sorted(named)


def map_points(index, seed: int = 0) -> list[dict]:
    """t-SNE coordinates (0..1) of up to MAP_MAX_POINTS items, cached in the index version."""
    cache = Path(index.version) / MAP_FILE
    if cache.is_file():
        return durable.read_json(cache)
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    count = len(index.items)
    rows = np.arange(count)
    if count > MAP_MAX_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(count, MAP_MAX_POINTS, replace=False))
    if len(rows) < 5:
        raise ValueError("a map needs at least 5 indexed images")
    chosen = normalise(store.read_rows(Path(index.version), rows))  # never every vector at once
    if chosen.shape[1] > 50 and len(rows) > 50:
        chosen = PCA(n_components=50, random_state=seed).fit_transform(chosen)
    perplexity = min(30.0, (len(rows) - 1) / 3)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(chosen)
    xy = (xy - xy.min(axis=0)) / np.maximum(xy.max(axis=0) - xy.min(axis=0), 1e-12)
    points = [
        {"id": index.items[row].id, "path": index.items[row].path, "x": float(x), "y": float(y)}
        for row, (x, y) in zip(rows, xy, strict=True)
    ]
    durable.write_json(cache, points)
    return points


def draw_map(index, out_path: Path, thumbnails: int = 300) -> None:
    """The collection as a t-SNE scatter: class-coloured points, or thumbnails where no classes."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    points = map_points(index)
    classes = collection_classes(index.items)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(10, 10))
    axis.set_xticks([])
    axis.set_yticks([])
    if classes:
        for name in classes:
            mine = [p for p in points if class_of(p["path"]) == name]
            axis.scatter([p["x"] for p in mine], [p["y"] for p in mine], s=8, label=f"{name} ({len(mine)})")
        axis.legend(loc="best", markerscale=3)
    else:
        axis.scatter([p["x"] for p in points], [p["y"] for p in points], s=4, color="0.7")
        step = max(1, len(points) // thumbnails)
        for point in points[::step]:
            try:
                image = imaging.open_rgb(index.collection_root / point["path"], min_side=40)
            except imaging.UnreadableImage:
                continue
            image.thumbnail((40, 40))
            box = AnnotationBbox(OffsetImage(np.asarray(image)), (point["x"], point["y"]), frameon=False)
            axis.add_artist(box)
    axis.set_title(f"{len(points)} images, t-SNE of their {index.manifest.model} vectors")
    figure.tight_layout()
    figure.savefig(out_path, dpi=90)
    plt.close(figure)
