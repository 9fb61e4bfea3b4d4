"""Cut embeddings from 2048 (or whatever the model gives) to fewer dimensions.

Two reducers, both fitted on the collection's own vectors and both applied to L2-normalised
vectors (only directions matter for the angular metric):

- ``autoencoder``: a dense autoencoder D -> hidden -> dims -> hidden -> D, trained with a validation
  split and early stopping; its encoder is the reducer.
- ``pca``: scikit-learn PCA, the baseline an autoencoder has to beat.
- ``whiten``: the same PCA, each component then scaled to unit variance (PCA whitening learned on
  the collection, Jégou & Chum, ECCV 2012): directions the collection varies little along, where
  two views of one scene differ by chance, weigh as much as the rest.

``python autoencoder.py`` trains the autoencoder on the current index's vectors, saves it in the
index directory (``img2vec.py --reduce autoencoder`` then uses it) and reports how many of each
item's exact top-10 neighbours survive the reduction, for the autoencoder and for PCA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgsim import config, durable
from imgsim.index.model_key import ModelKey
from imgsim.index.vectors import exact_neighbours, normalise

Reducer = Callable[[np.ndarray], np.ndarray]
AUTOENCODER_FILE = "autoencoder.keras"
AUTOENCODER_INFO = "autoencoder.json"


def _fitted_pca(vectors: np.ndarray, dims: int):
    """scikit-learn's PCA fitted on the normalised vectors."""
    from sklearn.decomposition import PCA

    check_dims(vectors, dims)
    return PCA(n_components=dims, random_state=0).fit(normalise(vectors))


def fit_pca(vectors: np.ndarray, dims: int) -> dict[str, np.ndarray]:
    """PCA parameters (mean, components) of the normalised vectors."""
    pca = _fitted_pca(vectors, dims)
    return {"mean": pca.mean_.astype(np.float32), "components": pca.components_.astype(np.float32)}


def fit_whitening(vectors: np.ndarray, dims: int) -> dict[str, np.ndarray]:
    """PCA parameters and the scale of each component that gives it unit variance."""
    pca = _fitted_pca(vectors, dims)
    scale = 1.0 / np.sqrt(pca.explained_variance_ + 1e-9)
    return {
        "mean": pca.mean_.astype(np.float32),
        "components": pca.components_.astype(np.float32),
        "scale": scale.astype(np.float32),
    }


def pca_reducer(params: dict[str, np.ndarray]) -> Reducer:
    """PCA's projection; with a ``scale`` (whitening), each component scaled by it."""
    mean, components = params["mean"], params["components"]
    scale = params.get("scale")
    if scale is None:
        return lambda vectors: (normalise(vectors) - mean) @ components.T
    return lambda vectors: ((normalise(vectors) - mean) @ components.T) * scale


def check_dims(vectors: np.ndarray, dims: int) -> None:
    count, width = vectors.shape
    if dims >= width:
        raise ValueError(f"cannot reduce {width}-d vectors to {dims} dimensions")
    if count < dims:
        raise ValueError(
            f"reducing to {dims} dimensions needs at least {dims} images, the collection has "
            f"{count}: use a smaller --dims or --reduce none"
        )


def train_autoencoder(
    vectors: np.ndarray,
    dims: int = 256,
    epochs: int = 50,
    batch_size: int = 256,
    patience: int = 5,
    verbose: int = 1,
    seed: int = 0,
):
    """Train the dense autoencoder on normalised vectors and return its encoder (a Keras model)."""
    import keras

    check_dims(vectors, dims)
    width = vectors.shape[1]
    hidden = max(2 * dims, min(1024, width))
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(width,), name="embedding")
    unit = keras.layers.UnitNormalization(name="normalise")(inputs)
    code = keras.layers.Dense(hidden, activation="relu", name="enc_hidden")(unit)
    code = keras.layers.Dense(dims, name="code")(code)
    encoder = keras.Model(inputs, code, name="encoder")
    out = keras.layers.Dense(hidden, activation="relu", name="dec_hidden")(code)
    out = keras.layers.Dense(width, name="reconstruction")(out)
    model = keras.Model(inputs, out, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="cosine_similarity")
    targets = normalise(vectors)
    stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
    model.fit(
        vectors,
        targets,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=0.1,
        shuffle=True,
        callbacks=[stop],
        verbose=verbose,
    )
    return encoder


def keras_reducer(encoder) -> Reducer:
    def reduce(vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        if len(vectors) <= 1024:  # one query: skip predict()'s per-call set-up
            return np.asarray(encoder.predict_on_batch(vectors), np.float32)
        return np.asarray(encoder.predict(vectors, batch_size=1024, verbose=0), np.float32)

    return reduce


def save_reducer(kind: str, fitted, directory: Path) -> None:
    """Store a fitted reducer (PCA params or autoencoder encoder) in an index version."""
    if kind in ("pca", "whiten"):
        np.savez(Path(directory) / f"reducer_{kind}.npz", **fitted)
    elif kind == "autoencoder":
        fitted.save(Path(directory) / "reducer_autoencoder.keras")
    else:
        raise ValueError(f"unknown reducer {kind!r}")


def load_reducer(kind: str, directory: Path) -> Reducer | None:
    """The reducer stored in an index version, or None for ``kind == "none"``."""
    if kind == "none":
        return None
    if kind in ("pca", "whiten"):
        with np.load(Path(directory) / f"reducer_{kind}.npz") as params:
            return pca_reducer(dict(params))
    if kind == "autoencoder":
        import keras

        return keras_reducer(keras.saving.load_model(Path(directory) / "reducer_autoencoder.keras"))
    raise ValueError(f"unknown reducer {kind!r}")


def fit_for_build(
    kind: str, vectors: np.ndarray, cfg: config.Config, model_key: ModelKey, log=print, verbose: int = 2
):
    """The reducer for a new index version.

    PCA is refitted on every build (seconds). The autoencoder trained by ``python autoencoder.py``
    is reused when it fits this model and size, so incremental builds stay fast and stable;
    otherwise one is trained now and kept for the next builds.
    """
    if kind == "pca":
        return fit_pca(vectors, cfg.dims)
    if kind == "whiten":
        return fit_whitening(vectors, cfg.dims)
    if kind != "autoencoder":
        raise ValueError(f"unknown reducer {kind!r}")
    import keras

    saved = Path(cfg.index_dir) / AUTOENCODER_FILE
    info_path = Path(cfg.index_dir) / AUTOENCODER_INFO
    if saved.is_file() and info_path.is_file():
        info = durable.read_json(info_path)
        if info.get("model_key") == str(model_key) and info.get("dims") == cfg.dims:
            log(f"Using the autoencoder trained on {info.get('trained_at')} ({saved})")
            return keras.saving.load_model(saved)
    log(f"Training an autoencoder {vectors.shape[1]} -> {cfg.dims} on {len(vectors)} vectors ...")
    encoder = train_autoencoder(vectors, cfg.dims, cfg.epochs, verbose=verbose)
    save_trained(encoder, cfg, model_key, len(vectors))
    return encoder


def save_trained(encoder, cfg: config.Config, model_key: ModelKey, count: int, **extra) -> None:
    saved = Path(cfg.index_dir) / AUTOENCODER_FILE
    tmp = saved.with_name(".tmp-" + saved.name)  # Keras saves by path and wants the .keras suffix
    encoder.save(tmp)
    tmp.replace(saved)
    info = {
        "model_key": str(model_key),
        "dims": cfg.dims,
        "trained_on": count,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    durable.write_json(Path(cfg.index_dir) / AUTOENCODER_INFO, info | extra)


# --- autoencoders on the collection's own pixels: an embedder with no pretrained network ----

PIXEL_MODELS = {"convae": 128, "simpleae": 64}  # name -> side of the images it is trained on
ENCODER_FILE = "embedder.keras"
PIXEL_AUTOENCODER_FILE = "pixel_autoencoder.keras"


def build_pixel_autoencoder(kind: str, dims: int = 256):
    """(autoencoder, encoder) for RGB 0..255 images; the encoder outputs the flattened bottleneck.

    convae: four conv + pool stages 128 -> 8 pixels, a 16-channel 8x8 bottleneck (1024-d); kept
    narrow (16-32 channels, about 0.3 GFLOP per image) so that it trains in minutes on a CPU.
    simpleae: one hidden dense layer of ``dims`` units over the 64x64 pixels.
    """
    import keras
    from keras import layers

    side = PIXEL_MODELS[kind]
    inputs = keras.Input(shape=(side, side, 3), name="pixels")
    x = layers.Rescaling(1 / 255, name="to_unit")(inputs)
    if kind == "convae":
        for i, filters in enumerate((16, 32, 32, 16)):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"enc_conv{i}")(x)
            x = layers.MaxPooling2D(2, name=f"enc_pool{i}")(x)
        code = layers.Conv2D(16, 3, padding="same", activation="relu", name="code")(x)
        vector = layers.Flatten(name="vector")(code)
        y = code
        for i, filters in enumerate((16, 32, 32, 16)):
            y = layers.UpSampling2D(2, name=f"dec_up{i}")(y)
            y = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"dec_conv{i}")(y)
        outputs = layers.Conv2D(3, 3, padding="same", activation="sigmoid", name="reconstruction")(y)
    elif kind == "simpleae":
        flat = layers.Flatten(name="flatten")(x)
        vector = layers.Dense(dims, activation="relu", name="code")(flat)
        y = layers.Dense(side * side * 3, activation="sigmoid", name="decode")(vector)
        outputs = layers.Reshape((side, side, 3), name="reconstruction")(y)
    else:
        raise ValueError(f"unknown pixel autoencoder {kind!r}; choose from {', '.join(PIXEL_MODELS)}")
    autoencoder = keras.Model(inputs, outputs, name=kind)
    encoder = keras.Model(inputs, vector, name=f"{kind}_encoder")
    return autoencoder, encoder


def train_pixel_autoencoder(
    kind: str,
    images: np.ndarray,
    dims: int = 256,
    epochs: int = 20,
    patience: int = 3,
    batch_size: int = 32,
    verbose: int = 2,
    seed: int = 0,
):
    """Train on uint8 images (N, side, side, 3); returns (autoencoder, encoder, history)."""
    import keras

    if len(images) < 2:
        raise ValueError("training an autoencoder needs at least 2 readable images")
    keras.utils.set_random_seed(seed)
    autoencoder, encoder = build_pixel_autoencoder(kind, dims)
    autoencoder.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    targets = images.astype(np.float32) / 255.0  # inputs stay uint8: the model rescales them
    stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
    history = autoencoder.fit(
        images,
        targets,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=0.1 if len(images) >= 10 else 0.5,
        shuffle=True,
        callbacks=[stop],
        verbose=verbose,
    )
    return autoencoder, encoder, history.history


def plot_reconstructions(autoencoder, images: np.ndarray, out_path: Path, count: int = 8) -> None:
    """A PNG: a few originals on top, their reconstructions below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = images[:count]
    rebuilt = autoencoder.predict_on_batch(shown.astype(np.float32))
    figure, axes = plt.subplots(2, len(shown), figsize=(1.6 * len(shown), 3.4), squeeze=False)
    for column, (original, copy) in enumerate(zip(shown, rebuilt, strict=True)):
        axes[0, column].imshow(original)
        axes[1, column].imshow(np.clip(copy, 0, 1))
        for axis in axes[:, column]:
            axis.axis("off")
    axes[0, 0].set_title("original", fontsize=9, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=9, loc="left")
    figure.tight_layout()
    figure.savefig(out_path, dpi=80)
    plt.close(figure)


def neighbour_preservation(
    full: np.ndarray, reduced: np.ndarray, k: int = 10, queries: int = 2000, seed: int = 0
) -> float:
    """Mean fraction of each item's exact top-k neighbours (full vectors) kept in the reduced ones."""
    count = len(full)
    if count <= k:
        raise ValueError(f"need more than k={k} vectors, got {count}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(count, size=min(queries, count), replace=False))
    before = exact_neighbours(full, rows, k)
    after = exact_neighbours(reduced, rows, k)
    kept = [len(set(a) & set(b)) for a, b in zip(before, after, strict=True)]
    return float(np.mean(kept) / k)
