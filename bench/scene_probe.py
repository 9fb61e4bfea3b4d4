"""What learned whitening and query expansion could give scene retrieval (issue 33), before any of
it is built: exact rankings of holidays_a's stored embeddings, scored with the Holidays mAP.

    .venv/bin/python -m bench.scene_probe

holidays_a (405 photos, 150 queries) indexed with the defaults and the shared EfficientNet-Lite0;
then the same vectors ranked exactly: as stored (full embeddings), in the index's space (centred,
what searches use), PCA-whitened with the whitening learned on the collection itself (d dims,
eigenvalues shrunk by lambda x their mean), and that with alpha-weighted query expansion and
database-side augmentation over the n nearest (each vector replaced by its neighbours' weighted
mean). A table of mAP per variant.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from bench.common import table
from imgsim import config
from imgsim.index import store
from imgsim.indexing import indexer
from imgsim.measure import scenes
from imgsim.search import annoy_index

HOLIDAYS = config.SHARED_DIR / "datasets" / "holidays_a"


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _holidays_map(vectors: np.ndarray, names: list[str], groups: dict[str, list[str]]) -> float:
    at = {name: row for row, name in enumerate(names)}
    similar = _unit(vectors) @ _unit(vectors).T
    aps = []
    for query, relevant in groups.items():
        row = at[query]
        listed = [other for other in np.argsort(-similar[row]) if other != row]
        wanted = {at[name] for name in relevant}
        aps.append(scenes.holidays_ap([rank for rank, r in enumerate(listed) if r in wanted], len(wanted)))
    return float(np.mean(aps))


def _whitening(train: np.ndarray, dims: int, shrink: float):
    mean = train.mean(axis=0)
    values, axes = np.linalg.eigh(np.cov((train - mean).T))
    top = np.argsort(-values)[:dims]
    values, axes = values[top], axes[:, top]
    return lambda vectors: ((vectors - mean) @ axes) / np.sqrt(values + shrink * values.mean())


def _expanded(vectors: np.ndarray, nearest: int, alpha: float) -> np.ndarray:
    unit = _unit(vectors)
    similar = unit @ unit.T
    out = np.empty_like(unit)
    for row in range(len(unit)):
        top = np.argsort(-similar[row])[: nearest + 1]
        weights = np.clip(similar[row, top], 0, None) ** alpha
        out[row] = (weights[:, None] * unit[top]).sum(axis=0)
    return out


def main() -> None:
    groups = scenes.read_groups(HOLIDAYS / "gt.json")
    work = Path(tempfile.mkdtemp(prefix="imgsim-bench-scenes-"))
    cfg = config.Config(index_dir=work / "index", model=str(config.SHARED_MODEL))
    indexer.build_index(HOLIDAYS, cfg, progress=False, log=lambda line: None)
    index = annoy_index.open_index(cfg.index_dir)
    names = [item.path.rsplit("/", 1)[-1] for item in index.items]
    full = _unit(store.read_vectors(index.version).astype(np.float64))
    spaced = np.stack([index.stored_vector(row) for row in range(len(index.items))]).astype(np.float64)
    rows = [
        ["full embeddings, exact", f"{_holidays_map(full, names, groups):.3f}"],
        ["the index's space (centred), exact", f"{_holidays_map(spaced, names, groups):.3f}"],
    ]
    for dims in (64, 128, 256):
        for shrink in (0.0, 0.5, 1.0):
            whitened = _whitening(full, dims, shrink)(full)
            rows.append(
                [
                    f"whitened on itself, {dims} dims, shrink {shrink}",
                    f"{_holidays_map(whitened, names, groups):.3f}",
                ]
            )
    whitened = _whitening(full, 128, 0.5)(full)
    for nearest in (1, 3, 5):
        expanded = _expanded(whitened, nearest, 3.0)
        rows.append(
            [
                f"whitened 128 + expansion over {nearest} (alpha 3)",
                f"{_holidays_map(expanded, names, groups):.3f}",
            ]
        )
    print(table(["variant", "Holidays mAP"], rows))
    print(json.dumps({"items": len(names), "queries": len(groups)}))


if __name__ == "__main__":
    main()
