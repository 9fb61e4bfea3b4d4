"""Generalised-mean (GeM) pooling of a network's last feature map, in place of average pooling.

Average pooling lets every cell of the feature map count alike, so a border, a crop or a turned
photo moves the vector with all the background it adds or removes. GeM with p = 3 weights the
strongly activated cells more (p = 1 is the average, p = inf the maximum) and keeps a photo's
vector closer to its edited copies: measured in docs/benchmarks.md section 9. Imported only where
a Keras model is built (TensorFlow); a converted model carries the pooling in its graph.
"""

from __future__ import annotations

import keras

POWER = 3.0
_FLOOR = 1e-6  # features below are clipped: a negative or zero activation has no real p-th root


@keras.saving.register_keras_serializable(package="imgsim")
class GeMPooling2D(keras.layers.Layer):
    """(batch, h, w, c) -> (batch, c): the p-th root of the mean of the p-th powers."""

    def __init__(self, power: float = POWER, **kwargs) -> None:
        super().__init__(**kwargs)
        self.power = float(power)

    def call(self, features):
        powered = keras.ops.power(keras.ops.maximum(features, _FLOOR), self.power)
        return keras.ops.power(keras.ops.mean(powered, axis=(1, 2)), 1.0 / self.power)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "power": self.power}


def _is_global_average(layer) -> bool:
    return isinstance(layer, keras.layers.GlobalAveragePooling2D) and not layer.keepdims


def has_average_pooling(network) -> bool:
    """Whether a global average pooling layer (at any depth of nested models) can be replaced."""
    for layer in network.layers:
        if _is_global_average(layer) or (isinstance(layer, keras.Model) and has_average_pooling(layer)):
            return True
    return False


def with_gem(network, power: float = POWER):
    """A copy of ``network`` with every global average pooling replaced by GeM, same weights.

    Returns None where the network has no such layer (GeM does not apply to it)."""
    if not has_average_pooling(network):
        return None

    def swap(layer):
        if _is_global_average(layer):
            return GeMPooling2D(power, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    pooled = keras.models.clone_model(network, clone_function=swap, recursive=True)
    pooled.set_weights(network.get_weights())
    return pooled
