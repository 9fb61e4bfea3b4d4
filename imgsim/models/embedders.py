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

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from imgsim import config
from imgsim.images import imaging
from imgsim.index.manifest import Manifest
from imgsim.index.model_key import POOLING_OPTIONS, ModelKey
from imgsim.models import reducers, runtimes
from imgsim.models.keys import (  # noqa: F401 (the names callers know embedders by)
    BACKBONES,
    WeightsUnavailable,
    model_key,
    weights_setting,
)
from imgsim.models.runtimes import Runtime

TENSORFLOW = Runtime("tensorflow")

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def preprocess_function(mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """Keras' preprocess_input for these backbones, in NumPy: the OpenVINO runtime runs without
    TensorFlow, and both runtimes scale pixels with the same code (equality with Keras is tested)."""
    if mode == "tf":
        return lambda x: x / np.float32(127.5) - np.float32(1.0)
    if mode == "caffe":
        return lambda x: x[..., ::-1] - _CAFFE_MEAN_BGR
    return lambda x: x


class Network(Protocol):
    """What runs the network on a batch: a Keras model, or runtimes.OpenVinoModel."""

    def predict_on_batch(self, batch: np.ndarray) -> Any: ...


@dataclass
class Embedder:
    """A network that maps a batch of RGB 0..255 images to one vector each."""

    name: str
    source: str  # what load_embedder was given: a backbone name or a .keras path
    weights: str | None
    key: ModelKey  # what its vectors depend on: they are reused only under the same key
    input_size: int
    dim: int
    model: Network
    preprocess: Callable[[np.ndarray], np.ndarray]
    runtime: str = "tensorflow"
    converted: Path | None = None  # the OpenVINO conversion it runs, copied into index versions
    precision: str = "f32"  # the arithmetic it runs in (precision.py): f32, bf16 or int8
    quantized: Path | None = None  # the int8 model it runs, where precision is int8
    trim: bool = False  # uniform borders are trimmed before resizing (see imaging.trim_border)
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
        return imaging.to_square(imaging.trim_border(image) if self.trim else image, self.input_size)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        batch = self.preprocess(np.array(pixels, dtype=np.float32))
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)

    def embed_images(self, images: Iterable[Image.Image]) -> np.ndarray:
        return self.embed(np.stack([self.prepare(image) for image in images]))


def load_embedder(
    model: str,
    weights: str | None = "imagenet",
    image_size: int = 0,
    runtime: Runtime = TENSORFLOW,
    converted_in: Path | None = None,
    pooling: str = "avg",
    trim: bool = False,
    quantized_in: Path | None = None,
) -> Embedder:
    """Load a backbone by name (penultimate layer, globally pooled) or a .keras model file.

    ``weights`` is "imagenet" (downloaded once into the Keras cache), a local weights file, or
    None for random weights (only good for measuring speed). On the OpenVINO runtime an earlier
    conversion (in ``converted_in``, else in the runtime's cache) is loaded without TensorFlow;
    otherwise the Keras model is loaded and converted, and where conversion fails the model runs
    on TensorFlow and the log says so. ``pooling`` "gem" replaces the global average pooling (where
    the model has one; the log says where it has none); ``trim`` trims uniform borders. The
    runtime's precision (f32 for auto; int8 only with the model quantized for it in
    ``quantized_in``) is the one run, or the next one down where this CPU lacks it.
    """
    precision = runtimes.runnable(runtime.precision, runtime.log) if runtime.name == "openvino" else "f32"
    key = model_key(model, weights, image_size, pooling, trim)  # the network's: what conversions are of
    if precision == "int8" and not (quantized_in and runtimes.is_quantized(quantized_in, key)):
        raise ValueError("int8 runs a model quantized on the collection: build with --precision int8")
    runtime = dataclasses.replace(runtime, precision=precision)
    loaded = _load(model, weights, image_size, key, runtime, converted_in, pooling, quantized_in)
    return dataclasses.replace(loaded, trim=trim)


def _load(
    model: str,
    weights: str | None,
    image_size: int,
    key: ModelKey,
    runtime: Runtime,
    converted_in: Path | None,
    pooling: str,
    quantized_in: Path | None = None,
) -> Embedder:
    if runtime.name == "openvino":
        cached = runtimes.cache_folder(runtime.cache, key) if runtime.cache else None
        done = next((f for f in (converted_in, cached) if f and runtimes.is_converted(f, key)), None)
        if done is not None:
            try:
                return _on_openvino(model, weights, image_size, key, done, runtime, quantized_in)
            except Exception as error:  # e.g. openvino missing here: the Keras model still runs
                keras_model = _load_keras(model, weights, image_size, key, pooling, runtime.log)
                return _on_tensorflow(keras_model, runtime, "load", error)
    embedder = _load_keras(model, weights, image_size, key, pooling, runtime.log)
    if runtime.name != "openvino":
        return embedder
    cache = runtime.cache or Path(tempfile.mkdtemp(prefix="imgsim-openvino-"))
    folder = runtimes.cache_folder(cache, key)
    try:
        runtimes.convert(embedder.model, folder, key)
        return _on_openvino(model, weights, image_size, key, folder, runtime, quantized_in)
    except Exception as error:  # any exporter or compiler failure: run the model as it is
        return _on_tensorflow(embedder, runtime, "convert", error)


def _on_tensorflow(embedder: Embedder, runtime: Runtime, failed: str, error: Exception) -> Embedder:
    """The Keras model on TensorFlow where OpenVINO could not ``failed`` it, said in one line."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    runtime.log(f"OpenVINO could not {failed} {embedder.name} ({reason}); running it on TensorFlow instead.")
    return embedder


def _identity(model: str) -> tuple[str, str, str]:
    """(name, source, preprocessing mode) of a backbone name or a .keras file, whichever runtime."""
    if model in BACKBONES:
        return model, model, BACKBONES[model][1]
    return Path(model).stem, str(Path(model).resolve()), "none"  # a .keras file scales its own input


def _on_openvino(
    model: str,
    weights: str | None,
    image_size: int,
    key: ModelKey,
    folder: Path,
    runtime: Runtime,
    quantized: Path | None = None,
) -> Embedder:
    """The conversion in ``folder`` (of the network with ``key``) at the runtime's precision: int8
    runs the model quantized from it in ``quantized``."""
    precision = runtime.precision if runtime.precision in runtimes.FASTEST_FIRST else "f32"
    quantized = quantized if precision == "int8" else None
    network = runtimes.OpenVinoModel(quantized or folder, runtime.threads, precision)
    name, source, mode = _identity(model)
    weights = weights if model in BACKBONES else None  # a .keras file carries its weights
    side = image_size or network.input_size
    if not side:
        raise ValueError(f"{model} has no fixed input size: pass --image-size")
    return Embedder(
        name,
        source,
        weights,
        key.at(precision),
        side,
        network.dim,
        network,
        preprocess_function(mode),
        runtime="openvino",
        converted=folder,
        precision=precision,
        quantized=quantized,
    )


def at_precision(embedder: Embedder, precision: str, quantized: Path | None = None) -> Embedder:
    """The same converted network compiled for another precision (int8: the model in ``quantized``)."""
    if precision == embedder.precision and precision != "int8":
        return embedder
    if embedder.runtime != "openvino" or embedder.converted is None:
        raise ValueError(f"{embedder.name} runs on {embedder.runtime}: only OpenVINO runs bf16 or int8")
    if precision == "int8" and not (quantized and runtimes.is_quantized(quantized, embedder.key.at("f32"))):
        raise WeightsUnavailable(
            f"no int8 model of {embedder.name} in {quantized}: rebuild with img2vec.py --full"
        )
    folder = quantized if precision == "int8" else embedder.converted
    assert folder is not None  # checked above (int8), or the embedder runs on OpenVINO
    network = runtimes.OpenVinoModel(folder, 0, precision)
    return dataclasses.replace(
        embedder,
        model=network,
        key=embedder.key.at(precision),
        precision=precision,
        quantized=quantized if precision == "int8" else None,
    )


def _load_keras(
    model: str, weights: str | None, image_size: int, key: ModelKey, pooling: str, log: Callable[[str], None]
) -> Embedder:
    if model in BACKBONES:
        embedder = _load_backbone(model, weights, image_size, key)
    else:
        embedder = _load_file(model, image_size, key)
    if pooling not in POOLING_OPTIONS:  # average pooling: the network's own
        return embedder
    from imgsim.models import gem

    if pooling == "regional":
        pooled, kind = gem.with_regional(embedder.model, embedder.input_size), "Regional GeM"
    else:
        pooled, kind = gem.with_gem(embedder.model), "GeM"
    if pooled is None:
        log(f"{kind} pooling does not apply to {embedder.name} (no global average pooling): kept as is.")
        return embedder
    return dataclasses.replace(embedder, model=pooled)


def _load_backbone(model: str, weights: str | None, image_size: int, key: ModelKey) -> Embedder:
    import keras

    class_name, mode, default_side = BACKBONES[model]
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
    return Embedder(
        model, model, weights, key, side, network.output_shape[-1], network, preprocess_function(mode)
    )


def _load_file(model: str, image_size: int, key: ModelKey) -> Embedder:
    import keras

    network = keras.saving.load_model(model)
    side = image_size or network.input_shape[1]
    if not side:
        raise ValueError(f"{model} has no fixed input size: pass --image-size")
    if len(network.output_shape) != 2:
        raise ValueError(f"{model} must output one vector per image, not {network.output_shape}")
    name, source, mode = _identity(model)
    dim, preprocess = network.output_shape[-1], preprocess_function(mode)
    return Embedder(name, source, None, key, side, dim, network, preprocess)


def for_index(manifest: Manifest, version: Path, runtime: Runtime = TENSORFLOW) -> Embedder:
    """The exact model an index was built with, to embed queries the same way.

    On OpenVINO, the conversion stored in the version is loaded without TensorFlow."""
    source = manifest.model_source
    trained = source in reducers.PIXEL_MODELS  # trained on the collection, stored in the version
    if trained:
        source = str(Path(version) / reducers.ENCODER_FILE)
    key = manifest.model_key  # the settings the vectors were made with
    pooling, trim, size = key.pooling, key.trim, key.image_size
    network_key = manifest.model_key.at("f32")
    converted, quantized = Path(version) / runtimes.VERSION_FOLDER, Path(version) / runtimes.INT8_FOLDER
    weights = weights_setting(manifest.weights)
    runtime = dataclasses.replace(
        runtime, precision=_query_precision(manifest, runtime, quantized, network_key)
    )
    carried = runtime.name == "openvino" and runtimes.is_converted(converted, network_key)
    embedder = None
    if carried and not trained:  # the very network of the build: its .keras file need not be here
        with contextlib.suppress(Exception):  # else as below: from the source, where it still is
            embedder = _on_openvino(source, weights, size, network_key, converted, runtime, quantized)
            embedder = dataclasses.replace(embedder, trim=trim)
    if embedder is None:
        embedder = load_embedder(source, weights, size, runtime, converted, pooling, trim, quantized)
    if trained:
        embedder = dataclasses.replace(
            embedder, name=manifest.model_source, source=manifest.model_source, trained_files=Path(version)
        )
    if embedder.key.at("f32") != network_key:
        raise WeightsUnavailable(
            f"the model {manifest.model_source} changed since the index was built; rebuild the "
            "index with img2vec.py"
        )
    # the index's key, whatever precision runs here: an addition or a compaction made with this
    # embedder belongs to the index, as its vectors agree with the index's (precision.py's gates)
    return dataclasses.replace(embedder, key=manifest.model_key)


def _query_precision(manifest: Manifest, runtime: Runtime, quantized: Path, network_key: ModelKey) -> str:
    """What queries run at: the index's precision (or the one asked for), else the next one down
    that this CPU has, or that the version has a model for (said in one line)."""
    if runtime.name != "openvino":
        return "f32"
    wanted = manifest.model_key.precision if runtime.precision == "auto" else runtime.precision
    precision = runtimes.runnable(wanted, runtime.log)
    if precision == "int8" and not runtimes.is_quantized(quantized, network_key):
        precision = runtimes.runnable("bf16", runtime.log)
        built = manifest.model_key.precision
        runtime.log(f"This index has no int8 model (it is {built}): queries run {precision} instead.")
    return precision


def best_available(cfg: config.Config, log: Callable[[str], None] = print) -> Embedder:
    """The best model available here: the configured one (InceptionV3 with ImageNet weights),
    else the shared EfficientNet-Lite0 (announced, never silent), else a clear error."""
    try:
        return from_config(cfg, log)
    except WeightsUnavailable as error:
        if not config.SHARED_MODEL.is_file():
            raise
        log(f"{error}\n-> Using the pretrained EfficientNet-Lite0 from {config.SHARED_MODEL} instead.")
        return from_config(cfg.replace(model=str(config.SHARED_MODEL), weights="none", image_size=0), log)


def from_config(cfg: config.Config, log: Callable[[str], None] = print) -> Embedder:
    """The configured model, made into vectors the configured way (pooling, trimming)."""
    weights = weights_setting(cfg.weights)
    runtime = runtimes.of(cfg, log)
    trim = cfg.trim_borders
    return load_embedder(cfg.model, weights, cfg.image_size, runtime, pooling=cfg.pooling, trim=trim)
