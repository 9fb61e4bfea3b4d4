"""Model keys: what a model's vectors depend on, cheap to compute before the model is loaded.

A key names the network (backbone and weights, or a model file by content), its input size and how
vectors are made from its features (pooling, border trimming, precision). Vectors are reused, and a
conversion or a query model is trusted, only under the same key.
"""

from __future__ import annotations

from pathlib import Path

from imgsim import durable
from imgsim.models import reducers

# name -> (keras.applications class, how its preprocess_input scales pixels, default input side)
BACKBONES = {
    "inception_v3": ("InceptionV3", "tf", 299),
    "vgg19": ("VGG19", "caffe", 224),
    "resnet50": ("ResNet50", "caffe", 224),
    "mobilenet_v2": ("MobileNetV2", "tf", 224),
    "efficientnetb0": ("EfficientNetB0", "none", 224),  # rescales inside the model
}


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be downloaded or read; the message says how to provide them."""


def weights_setting(weights: str) -> str | None:
    """The --weights setting as load_embedder takes it: "none" means random weights."""
    return None if weights == "none" else weights


PRECISION_OPTIONS = ("bf16", "int8")  # named in a key; f32, the only way before them, is not


def _options(pooling: str, trim: bool, precision: str = "f32") -> str:
    """The part of a model key that names how vectors are made from the network's features;
    empty for average pooling without trimming in f32, the only way before they existed."""
    used = (("gem", pooling == "gem"), ("trim", trim), (precision, precision in PRECISION_OPTIONS))
    named = [name for name, on in used if on]
    return "|" + ",".join(named) if named else ""


def key_precision(key: str) -> str:
    """The precision a model key's vectors were made in."""
    _, _, options = key.partition("|")
    return next((name for name in options.split(",") if name in PRECISION_OPTIONS), "f32")


def with_precision(key: str, precision: str) -> str:
    """The same model key for vectors made in ``precision``; with f32, the key of the network
    itself, which its OpenVINO conversion is of, whatever precision then runs it."""
    base, _, options = key.partition("|")
    named = [name for name in options.split(",") if name and name not in PRECISION_OPTIONS]
    named += [precision] if precision in PRECISION_OPTIONS else []
    return base + ("|" + ",".join(named) if named else "")


def key_options(key: str) -> tuple[str, bool, int]:
    """(pooling, trim, input-size setting) that a model key was made with."""
    base, _, options = key.partition("|")
    named = options.split(",") if options else []
    return ("gem" if "gem" in named else "avg"), "trim" in named, int(base.rsplit(":", 1)[1])


def model_key(
    model: str,
    weights: str | None = "imagenet",
    image_size: int = 0,
    pooling: str = "avg",
    trim: bool = False,
    precision: str = "f32",
) -> str:
    """What the vectors depend on, cheap to compute before the model is loaded."""
    return _base_key(model, weights, image_size) + _options(pooling, trim, precision)


def _base_key(model: str, weights: str | None, image_size: int) -> str:
    if model in reducers.PIXEL_MODELS:
        raise WeightsUnavailable(f"{model} is trained on the collection: build the index with img2vec.py")
    if model in BACKBONES:
        side = image_size or BACKBONES[model][2]
        weights_id = weights
        if weights not in (None, "imagenet"):
            if not Path(weights).is_file():
                raise WeightsUnavailable(f"weights file {weights} does not exist")
            weights_id = f"{Path(weights).name}:{durable.file_sha1(Path(weights))[:12]}"
        return f"{model}:{weights_id}:{side}"
    path = Path(model)
    if not path.is_file():
        raise WeightsUnavailable(
            f"unknown model {model!r}: use one of {', '.join(BACKBONES)} or the path of a .keras file"
        )
    return f"file:{path.name}:{durable.file_sha1(path)[:12]}:{image_size}"
