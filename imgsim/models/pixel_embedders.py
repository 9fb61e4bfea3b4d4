"""Embedders trained on the collection's own pixels (``--model convae`` / ``simpleae``): trained
once per collection, kept with the version, reused by later builds unless ``--retrain``. They need
no pretrained network, as in the classic image-retrieval demos."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgsim import config
from imgsim.index import store
from imgsim.index.manifest import Manifest
from imgsim.models import reducers, runtimes
from imgsim.models.embedders import Embedder, load_embedder


def trained_on_collection(
    cfg: config.Config,
    root: Path,
    images: Callable[[int, int], np.ndarray],
    retrain: bool = False,
    plot: Path | None = None,
    verbose: int = 2,
    log: Callable[[str], None] = print,
    current: tuple[Path, Manifest] | None = None,
) -> Embedder:
    """An autoencoder trained on the collection's own pixels (``cfg.model`` convae or simpleae).

    ``images(side, limit)`` decodes up to ``limit`` of the collection's images to side x side.
    Reuses the one the ``current`` version (its folder and manifest, as the build read them) was
    built with (or one whose embedding run was interrupted)
    unless ``retrain``; otherwise trains a new one. The trained files stay under .partial/ until
    a version built with them is published, so a failed training never replaces the old model.
    """
    kind = cfg.model
    side = reducers.PIXEL_MODELS[kind]
    fresh = store.partial_dir(cfg.index_dir) / kind
    trained = None if retrain else _trained_before(cfg, root, fresh, current)
    if trained is None:
        pixels = images(side, cfg.ae_train_images)
        log(f"Training {kind} on {len(pixels)} images of {side}x{side} (early stopping) ...")
        began = time.perf_counter()
        full, encoder, history = reducers.train_pixel_autoencoder(
            kind, pixels, cfg.dims, cfg.ae_epochs, verbose=verbose
        )
        fresh.mkdir(parents=True, exist_ok=True)
        (fresh / reducers.ENCODER_FILE).unlink(missing_ok=True)
        full.save(fresh / reducers.PIXEL_AUTOENCODER_FILE)
        encoder.save(fresh / reducers.ENCODER_FILE)  # written last: its presence means "complete"
        log(
            f"Trained {kind} in {time.perf_counter() - began:.0f} s over {len(history['loss'])} epochs, "
            f"validation loss {min(history['val_loss']):.4f}"
        )
        trained = fresh
    else:
        log(f"Using the {kind} trained earlier for this collection ({trained})")
    if plot is not None:
        import keras

        full = keras.saving.load_model(trained / reducers.PIXEL_AUTOENCODER_FILE)
        reducers.plot_reconstructions(full, images(side, 8), plot)
        log(f"Reconstructions: {plot}")
    encoder = str(trained / reducers.ENCODER_FILE)
    loaded = load_embedder(encoder, runtime=runtimes.of(cfg, log), pooling=cfg.pooling, trim=cfg.trim_borders)
    return dataclasses.replace(loaded, name=kind, source=kind, trained_files=trained)


def _trained_before(
    cfg: config.Config, root: Path, fresh: Path, current: tuple[Path, Manifest] | None
) -> Path | None:
    """The folder of a complete model of this kind for this collection, if one exists."""
    folders = [fresh]
    if current is not None:
        version, manifest = current
        if manifest.model_source == cfg.model and manifest.collection_root == str(root):
            folders.insert(0, version)
    return next((f for f in folders if (f / reducers.ENCODER_FILE).is_file()), None)
