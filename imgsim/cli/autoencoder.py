"""``imgsim autoencoder`` (``python autoencoder.py``): train the vector autoencoder on the current index.

It is saved in the index directory (``imgsim index DIR --reduce autoencoder`` then uses it); the
report says how many of each item's exact top-10 neighbours survive, for it and for PCA.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from imgsim import config
from imgsim.index import store
from imgsim.models.reducers import (
    AUTOENCODER_FILE,
    check_dims,
    fit_pca,
    keras_reducer,
    neighbour_preservation,
    pca_reducer,
    save_trained,
    train_autoencoder,
)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train the dense autoencoder on the current index's vectors and compare it "
        "with PCA by how well each keeps every item's top-10 neighbours.",
    )
    config.add_flags(parser, "index_dir", "dims", "epochs")
    _, cfg = config.parse_args(parser, argv)
    try:
        version = store.current_version(cfg.index_dir)
    except store.IndexMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    manifest = store.read_manifest(version)
    vectors = store.read_vectors(version)
    try:
        check_dims(vectors, cfg.dims)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(vectors)} vectors of {vectors.shape[1]} dims from {version.name}")
    started = time.perf_counter()
    encoder = train_autoencoder(vectors, cfg.dims, cfg.epochs, verbose=2)
    train_seconds = time.perf_counter() - started
    ae_kept = neighbour_preservation(vectors, keras_reducer(encoder)(vectors))
    pca_kept = neighbour_preservation(vectors, pca_reducer(fit_pca(vectors, cfg.dims))(vectors))
    save_trained(
        encoder,
        cfg,
        manifest.model_key,
        len(vectors),
        top10_kept_autoencoder=round(ae_kept, 4),
        top10_kept_pca=round(pca_kept, 4),
    )
    print(f"Trained in {train_seconds:.1f} s; saved {Path(cfg.index_dir) / AUTOENCODER_FILE}")
    print(f"Exact top-10 neighbours kept at {cfg.dims}-d:  autoencoder {ae_kept:.3f}   PCA {pca_kept:.3f}")
    print("Use it with: python img2vec.py FOLDER --reduce autoencoder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
