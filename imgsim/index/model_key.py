"""ModelKey: what an index's vectors depend on, as a value (models/keys.py computes one for a model).

A key names the network (a backbone with its weights and input side, or a model file by content and
the input size asked for) and how vectors are made from its features (pooling, border trimming,
precision). Vectors are reused, and a conversion or a query model trusted, only under an equal key.
It is text only where it is stored (manifest.json, the live store's rows, a conversion's
model_key.txt, checkpoints, references.json): ``str(key)`` writes it, ``ModelKey.parse`` reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PRECISION_OPTIONS = ("bf16", "int8")  # named in a key; f32, the only way before them, is not
POOLING_OPTIONS = ("gem", "regional")  # named in a key; average pooling, the first, is not


@dataclass(frozen=True)
class ModelKey:
    network: str  # "inception_v3:imagenet:299", "file:model.keras:0123456789ab:0", ...
    pooling: str = "avg"  # or "gem", "regional"
    trim: bool = False  # uniform borders trimmed before the network
    precision: str = "f32"  # the arithmetic the vectors were made in: f32, bf16 or int8

    def __str__(self) -> str:
        """The stored form: the network, then the options that are not the first ones imgsim had
        (average pooling, no trimming, f32), so that keys written before the options still match."""
        used = (
            (self.pooling, self.pooling != "avg"),
            ("trim", self.trim),
            (self.precision, self.precision != "f32"),
        )
        named = [name for name, on in used if on]
        return self.network + ("|" + ",".join(named) if named else "")

    @classmethod
    def parse(cls, text: str) -> ModelKey:
        network, _, options = text.partition("|")
        named = options.split(",") if options else []
        precision = next((name for name in named if name in PRECISION_OPTIONS), "f32")
        pooling = next((name for name in named if name in POOLING_OPTIONS), "avg")
        return cls(network, pooling, "trim" in named, precision)

    def at(self, precision: str) -> ModelKey:
        """The same key for vectors made in ``precision``; at f32, the key of the network itself,
        which its OpenVINO conversion is of, whatever precision then runs it."""
        return dataclasses.replace(self, precision=precision if precision in PRECISION_OPTIONS else "f32")

    @property
    def image_size(self) -> int:
        """The input-size setting the key was made with (0: the model's own)."""
        return int(self.network.rsplit(":", 1)[1])
