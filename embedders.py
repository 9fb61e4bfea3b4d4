"""The networks that turn an image into a vector, and how each is found, loaded and identified.

- a keras.applications backbone by name (InceptionV3 by default: the penultimate layer, 2048-d),
  with ImageNet weights or a local weights file;
- a ``.keras`` model of the user's own (RGB 0..255 in, one vector out);
- an autoencoder trained on the collection's own pixels (``convae``, ``simpleae``), stored in
  the index version so that queries use exactly the encoder the collection was embedded with.

Missing weights never fall back silently to something else: WeightsUnavailable says how to
provide them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import autoencoder
import config
import imaging
import store

# name -> (keras.applications class, module holding its preprocess_input, default input side)
BACKBONES = {
    "inception_v3": ("InceptionV3", "inception_v3", 299),
    "vgg19": ("VGG19", "vgg19", 224),
    "resnet50": ("ResNet50", "resnet50", 224),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", 224),
    "efficientnetb0": ("EfficientNetB0", "efficientnet", 224),
}


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be downloaded or read; the message says how to provide them."""


@dataclass
class Embedder:
    """A network that maps a batch of RGB 0..255 images to one vector each."""

    name: str
    source: str  # what load_embedder was given: a backbone name or a .keras path
    weights: str | None
    key: str  # identifies model + weights + input size; vectors are reused only under the same key
    input_size: int
    dim: int
    model: object
    preprocess: Callable[[np.ndarray], np.ndarray]
    # for models trained on the collection (convae, simpleae): the folder holding the trained
    # files, copied into every index version built with them
    trained_files: Path | None = None

    @property
    def decode_side(self) -> int:
        """Images are decoded shrunk down to no less than twice the network's input on each side:
        cheap (JPEGs decode at reduced scale) and the vector stays that of the full image."""
        return 2 * self.input_size

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Resize a PIL RGB image to the network's square input, as uint8 pixels."""
        return imaging.to_square(image, self.input_size)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        batch = self.preprocess(np.array(pixels, dtype=np.float32))
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)

    def embed_images(self, images: Iterable[Image.Image]) -> np.ndarray:
        return self.embed(np.stack([self.prepare(image) for image in images]))


def weights_setting(weights: str) -> str | None:
    """The --weights setting as load_embedder takes it: "none" means random weights."""
    return None if weights == "none" else weights


def model_key(model: str, weights: str | None = "imagenet", image_size: int = 0) -> str:
    """What the vectors depend on, cheap to compute before the model is loaded."""
    if model in autoencoder.PIXEL_MODELS:
        raise WeightsUnavailable(f"{model} is trained on the collection: build the index with img2vec.py")
    if model in BACKBONES:
        side = image_size or BACKBONES[model][2]
        weights_id = weights
        if weights not in (None, "imagenet"):
            if not Path(weights).is_file():
                raise WeightsUnavailable(f"weights file {weights} does not exist")
            weights_id = f"{Path(weights).name}:{store.file_sha1(Path(weights))[:12]}"
        return f"{model}:{weights_id}:{side}"
    path = Path(model)
    if not path.is_file():
        raise WeightsUnavailable(
            f"unknown model {model!r}: use one of {', '.join(BACKBONES)} or the path of a .keras file"
        )
    return f"file:{path.name}:{store.file_sha1(path)[:12]}:{image_size}"


def load_embedder(model: str, weights: str | None = "imagenet", image_size: int = 0) -> Embedder:
    """Load a backbone by name (penultimate layer, global average pool) or a .keras model file.

    ``weights`` is "imagenet" (downloaded once into the Keras cache), a local weights file, or
    None for random weights (only good for measuring speed).
    """
    import keras

    key = model_key(model, weights, image_size)
    if model not in BACKBONES:
        return _load_file(model, image_size, key)
    class_name, module_name, default_side = BACKBONES[model]
    side = image_size or default_side
    build = getattr(keras.applications, class_name)
    try:
        network = build(include_top=False, pooling="avg", weights=weights, input_shape=(side, side, 3))
    except Exception as error:  # Keras raises a bare Exception for a failed download
        if weights != "imagenet":
            raise WeightsUnavailable(f"cannot load weights {weights}: {error}") from error
        raise WeightsUnavailable(
            f"The ImageNet weights of {model} could not be downloaded ({error}). Run this once "
            "on a machine with internet access (Keras caches them in ~/.keras/models/), "
            f"or pass --weights PATH to a local {class_name} 'notop' weights file, or use "
            "--model PATH to a .keras model of your own, or --model convae to train an "
            "autoencoder on your own images (no download)."
        ) from error
    preprocess = getattr(keras.applications, module_name).preprocess_input
    return Embedder(model, model, weights, key, side, network.output_shape[-1], network, preprocess)


def _load_file(model: str, image_size: int, key: str) -> Embedder:
    import keras

    network = keras.saving.load_model(model)
    side = image_size or network.input_shape[1]
    if not side:
        raise ValueError(f"{model} has no fixed input size: pass --image-size")
    if len(network.output_shape) != 2:
        raise ValueError(f"{model} must output one vector per image, not {network.output_shape}")
    source = str(Path(model).resolve())
    return Embedder(Path(model).stem, source, None, key, side, network.output_shape[-1], network, lambda x: x)


def for_index(manifest: store.Manifest, version: Path) -> Embedder:
    """The exact model an index was built with, to embed queries the same way."""
    source = manifest.model_source
    trained = source in autoencoder.PIXEL_MODELS  # trained on the collection, stored in the version
    if trained:
        source = str(Path(version) / autoencoder.ENCODER_FILE)
    # the model key ends with the input-size setting it was built with (0 = the model's own)
    size = int(manifest.model_key.rsplit(":", 1)[1])
    embedder = load_embedder(source, weights_setting(manifest.weights), size)
    if trained:
        embedder = dataclasses.replace(
            embedder, name=manifest.model_source, source=manifest.model_source, trained_files=Path(version)
        )
    if embedder.key != manifest.model_key:
        raise WeightsUnavailable(
            f"the model {manifest.model_source} changed since the index was built; rebuild the "
            "index with img2vec.py"
        )
    return embedder


def best_available(cfg: config.Config, log: Callable[[str], None] = print) -> Embedder:
    """The best model available here: the configured one (InceptionV3 with ImageNet weights),
    else the shared EfficientNet-Lite0 (announced, never silent), else a clear error."""
    try:
        return load_embedder(cfg.model, weights_setting(cfg.weights), cfg.image_size)
    except WeightsUnavailable as error:
        if not config.SHARED_MODEL.is_file():
            raise
        log(f"{error}\n-> Using the pretrained EfficientNet-Lite0 from {config.SHARED_MODEL} instead.")
        return load_embedder(str(config.SHARED_MODEL))


def trained_on_collection(
    cfg: config.Config,
    root: Path,
    images: Callable[[int, int], np.ndarray],
    retrain: bool = False,
    plot: Path | None = None,
    verbose: int = 2,
    log: Callable[[str], None] = print,
) -> Embedder:
    """An autoencoder trained on the collection's own pixels (``cfg.model`` convae or simpleae).

    ``images(side, limit)`` decodes up to ``limit`` of the collection's images to side x side.
    Reuses the one the current index was built with (or one whose embedding run was interrupted)
    unless ``retrain``; otherwise trains a new one. The trained files stay under .partial/ until
    a version built with them is published, so a failed training never replaces the old model.
    """
    kind = cfg.model
    side = autoencoder.PIXEL_MODELS[kind]
    fresh = store.partial_dir(cfg.index_dir) / kind
    trained = None if retrain else _trained_before(cfg, root, fresh)
    if trained is None:
        pixels = images(side, cfg.ae_train_images)
        log(f"Training {kind} on {len(pixels)} images of {side}x{side} (early stopping) ...")
        began = time.perf_counter()
        full, encoder, history = autoencoder.train_pixel_autoencoder(
            kind, pixels, cfg.dims, cfg.ae_epochs, verbose=verbose
        )
        fresh.mkdir(parents=True, exist_ok=True)
        (fresh / autoencoder.ENCODER_FILE).unlink(missing_ok=True)
        full.save(fresh / autoencoder.PIXEL_AUTOENCODER_FILE)
        encoder.save(fresh / autoencoder.ENCODER_FILE)  # written last: its presence means "complete"
        log(
            f"Trained {kind} in {time.perf_counter() - began:.0f} s over {len(history['loss'])} epochs, "
            f"validation loss {min(history['val_loss']):.4f}"
        )
        trained = fresh
    else:
        log(f"Using the {kind} trained earlier for this collection ({trained})")
    if plot is not None:
        import keras

        full = keras.saving.load_model(trained / autoencoder.PIXEL_AUTOENCODER_FILE)
        autoencoder.plot_reconstructions(full, images(side, 8), plot)
        log(f"Reconstructions: {plot}")
    loaded = load_embedder(str(trained / autoencoder.ENCODER_FILE))
    return dataclasses.replace(loaded, name=kind, source=kind, trained_files=trained)


def _trained_before(cfg: config.Config, root: Path, fresh: Path) -> Path | None:
    """The folder of a complete model of this kind for this collection, if one exists."""
    folders = [fresh]
    try:
        version = store.current_version(cfg.index_dir)
        manifest = store.read_manifest(version)
        if manifest.model_source == cfg.model and manifest.collection_root == str(root):
            folders.insert(0, version)
    except store.IndexMissing:
        pass
    return next((f for f in folders if (f / autoencoder.ENCODER_FILE).is_file()), None)
