"""Where a network runs: TensorFlow (the Keras model as it is) or OpenVINO (the same model, converted).

OpenVINO runs these CNNs several times faster on a CPU than TensorFlow does, and once a model is
converted it needs no TensorFlow at all: a service worker that answers queries from a converted
model is a fraction of the size. Conversion uses Keras' own exporter, once per model key; the
converted files are cached in a folder per key (``model_cache``) and copied into every index
version built with them, so that a worker loads them from the version without converting.

The vectors are the same as TensorFlow's (cosine >= 0.999 per image, tested): OpenVINO is asked
for float32 inference, because its default on CPUs with bf16 units moves vectors by about 0.5 %.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsim import config

MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
KEY_FILE = "model_key.txt"  # written last: its presence means the conversion is complete
VERSION_FOLDER = "openvino"  # where an index version keeps the conversion it was built with


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class Runtime:
    """Which runtime to run networks on, where converted models are kept, and where to say so."""

    name: str = "tensorflow"
    cache: Path | None = None  # None: a temporary folder per conversion
    threads: int = 0  # OpenVINO inference threads; 0 = all cores
    log: Callable[[str], None] = field(default=_stderr, compare=False)


def of(cfg: config.Config, log: Callable[[str], None] = _stderr, threads: int = 0) -> Runtime:
    """The runtime a configuration asks for."""
    return Runtime(cfg.runtime, cache_root(cfg.model_cache), threads, log)


def cache_root(setting: str) -> Path:
    """The model_cache setting as a folder: empty means beside Keras' own cache."""
    if setting:
        return Path(setting).expanduser()
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "imgsim-openvino"


def cache_folder(root: Path, key: str) -> Path:
    """One folder per model key (keys hold ':' and file names, so the folder is named by a hash)."""
    return root / hashlib.sha1(key.encode()).hexdigest()[:16]


def is_converted(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds a complete conversion of the model with this key."""
    try:
        return (folder / KEY_FILE).read_text() == key and (folder / MODEL_BIN).is_file()
    except OSError:
        return False


def convert(keras_model: object, folder: Path, key: str) -> None:
    """Export a Keras model to OpenVINO into ``folder``.

    Written into a sibling temporary folder and renamed into place, so that a worker or a second
    build converting the same model at the same time never reads half a conversion.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
    try:
        keras_model.export(str(building / MODEL_XML), format="openvino", verbose=False)
        (building / KEY_FILE).write_text(key)
        if is_converted(folder, key):
            return  # another process finished first
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def copy_converted(folder: Path, target: Path) -> None:
    """Copy a conversion into an index version (hard links where the file system allows)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_XML, MODEL_BIN, KEY_FILE):  # the key file last
        try:
            os.link(folder / name, target / name)
        except OSError:
            shutil.copy2(folder / name, target / name)


class OpenVinoModel:
    """A converted network compiled for the CPU, with Keras' ``predict_on_batch`` surface."""

    def __init__(self, folder: Path, threads: int = 0):
        import openvino

        properties = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        core = openvino.Core()
        self.compiled = core.compile_model(str(folder / MODEL_XML), "CPU", properties)
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: concurrent callers take turns
        side = self.compiled.input(0).get_partial_shape()[1]
        self.input_size = 0 if side.is_dynamic else int(side.get_length())  # 0: the model takes any size
        self.dim = int(self.compiled.output(0).get_partial_shape()[-1].get_length())

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            result = self._request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
            return np.array(result[self.compiled.output(0)], dtype=np.float32)
