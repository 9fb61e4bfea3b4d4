"""A model's key (index/model_key.py: what its vectors depend on), computed before it is loaded."""

from __future__ import annotations

from pathlib import Path

from imgsim import durable
from imgsim.index.model_key import ModelKey
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


def model_key(
    model: str,
    weights: str | None = "imagenet",
    image_size: int = 0,
    pooling: str = "avg",
    trim: bool = False,
    precision: str = "f32",
) -> ModelKey:
    """What the vectors depend on, cheap to compute before the model is loaded."""
    return ModelKey(_base_key(model, weights, image_size), pooling, trim).at(precision)


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
