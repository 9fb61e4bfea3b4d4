"""Generalised-mean (GeM) pooling of a network's last feature map, in place of average pooling.

Average pooling lets every cell of the feature map count alike, so a border, a crop or a turned
photo moves the vector with all the background it adds or removes. GeM with p = 3 weights the
strongly activated cells more (p = 1 is the average, p = inf the maximum) and keeps a photo's
vector closer to its edited copies: measured in docs/benchmarks.md section 9. Imported only where
a Keras model is built (TensorFlow); a converted model carries the pooling in its graph.

Regional GeM pools the same map in R-MAC's regions (Tolias, Sicre & Jégou, ICLR 2016: squares at
3 scales, about 40 % overlap; 14 regions of a 7 x 7 map), each region's vector made unit-length and
the regions summed: an object or a place that fills only part of the photo counts as much as the
whole photo does (docs/benchmarks.md section 23 measured it against global GeM).
"""

from __future__ import annotations

import keras
import numpy as np

POWER = 3.0
_FLOOR = 1e-6  # features below are clipped: a negative or zero activation has no real p-th root
LEVELS = 3  # R-MAC's scales of regions: 1, 2 x 2 and 3 x 3 squares on a square map
OVERLAP = 0.4  # R-MAC's overlap of neighbouring regions, which sets how many lie along a longer side


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


def regions(height: int, width: int, levels: int = LEVELS) -> list[tuple[int, int, int]]:
    """R-MAC's regions of a ``height`` x ``width`` map as (top, left, side) squares: at level l,
    squares of side 2 min / (l + 1), l of them along the shorter side and as many more along the
    longer one as keep their overlap near OVERLAP (the reference code of Tolias et al.)."""
    shorter, longer = min(height, width), max(height, width)
    extra = 0
    if longer > shorter:
        steps = np.arange(2, 8)
        step = (longer - shorter) / (steps - 1)
        extra = int(np.argmin(np.abs((shorter**2 - shorter * step) / shorter**2 - OVERLAP))) + 1
    extra_down, extra_across = (extra, 0) if height > width else (0, extra)
    found = []
    for level in range(1, levels + 1):
        side = int(2 * shorter // (level + 1))
        if side < 1:
            continue
        tops = _starts(height, side, level + extra_down)
        lefts = _starts(width, side, level + extra_across)
        found += [(top, left, side) for top in tops for left in lefts]
    return found


def _starts(length: int, side: int, count: int) -> list[int]:
    """Where ``count`` squares of ``side`` start along ``length``, evenly from one end to the other."""
    half = np.floor(side / 2 - 1)
    step = (length - side) / (count - 1) if count > 1 else 0.0
    return [int(np.floor(half + n * step) - half) for n in range(count)]


@keras.saving.register_keras_serializable(package="imgsim")
class RegionalGeM2D(keras.layers.Layer):
    """(batch, h, w, c) -> (batch, c): GeM in each of R-MAC's regions of a ``map_size`` map, each
    made unit-length, summed and made unit-length. The size is given, not read from the input:
    exporting a model traces its nested parts with their own inputs, whose size is unknown."""

    def __init__(self, map_size, power: float = POWER, levels: int = LEVELS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.map_size = (int(map_size[0]), int(map_size[1]))
        self.power, self.levels = float(power), int(levels)

    def call(self, features):
        known = (features.shape[1], features.shape[2])
        if None not in known and known != self.map_size:
            raise ValueError(f"regional pooling made for a {self.map_size} map was given {known}")
        powered = keras.ops.power(keras.ops.maximum(features, _FLOOR), self.power)
        total = None
        for top, left, side in regions(*self.map_size, self.levels):
            mean = keras.ops.mean(powered[:, top : top + side, left : left + side, :], axis=(1, 2))
            pooled = keras.ops.power(mean, 1.0 / self.power)
            unit = pooled / (keras.ops.norm(pooled, axis=-1, keepdims=True) + _FLOOR)
            total = unit if total is None else total + unit
        return total / (keras.ops.norm(total, axis=-1, keepdims=True) + _FLOOR)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        return {**config, "map_size": list(self.map_size), "power": self.power, "levels": self.levels}


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
    return _pooled_by(network, lambda name: GeMPooling2D(power, name=name))


def with_regional(network, side: int, power: float = POWER, levels: int = LEVELS):
    """A copy of ``network`` with every global average pooling replaced by regional GeM, same
    weights, taking ``side`` x ``side`` pictures (the feature map's size decides its regions).

    Returns None where the network has no such layer."""
    pictures = keras.Input((side, side, 3))
    unpooled = _pooled_by(network, lambda name: keras.layers.Identity(name=name), weights=False)
    if unpooled is None:
        return None
    map_size = unpooled(pictures).shape[1:3]  # the pooled map's, found by shapes alone
    pooled = _pooled_by(network, lambda name: RegionalGeM2D(map_size, power, levels, name=name))
    return keras.Model(pictures, pooled(pictures), name=network.name)


def _pooled_by(network, pooling, weights: bool = True):
    """A copy of ``network`` with ``pooling(name)`` for each global average pooling, with its
    ``weights``; None where it has none."""
    if not has_average_pooling(network):
        return None

    def swap(layer):
        if _is_global_average(layer):
            return pooling(layer.name)
        return layer.__class__.from_config(layer.get_config())

    pooled = keras.models.clone_model(network, clone_function=swap, recursive=True)
    if weights:
        pooled.set_weights(network.get_weights())
    return pooled
