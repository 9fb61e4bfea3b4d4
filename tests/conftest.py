"""Shared test helpers: generated images, a tiny model for pipeline mechanics, the shared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import config  # noqa: E402

requires_shared = pytest.mark.skipif(
    not (config.SHARED_MODEL.is_file() and config.SHARED_FLOWERS.is_dir()),
    reason=f"needs the shared pretrained model and flowers5 photos in {config.SHARED_DIR} (absent here)",
)


def write_images(folder: Path, count: int, size: int = 48, seed: int = 0, prefix: str = "img") -> list[Path]:
    """Distinct little pictures: a random background colour with a random rectangle on it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = np.empty((size, size, 3), dtype=np.uint8)
        pixels[:] = rng.integers(0, 256, 3)
        x, y = rng.integers(0, size // 2, 2)
        pixels[y : y + size // 2, x : x + size // 2] = rng.integers(0, 256, 3)
        path = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def quiet_build(dataset, cfg, **options):
    """img2vec.build_index without a progress bar or log lines: the tests read its report."""
    import img2vec

    return img2vec.build_index(dataset, cfg, progress=False, log=lambda _: None, **options)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A small random-weight CNN saved as a bring-your-own .keras model.

    It exercises the pipeline's mechanics (batching, incremental runs, swaps) quickly; it says
    nothing about retrieval quality, which the tests with the shared pretrained model cover.
    Its input size is free, so --image-size can make it as slow as a test needs.
    """
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return str(path)


@pytest.fixture
def tiny_config(tmp_path, tiny_model) -> config.Config:
    return config.Config(
        index_dir=tmp_path / "index",
        model=tiny_model,
        image_size=32,
        batch_size=4,
        trees=10,
        checkpoint_every=8,
    )
