"""Where a network runs: TensorFlow (the Keras model as it is) or OpenVINO (the same model, converted).

OpenVINO runs these CNNs several times faster on a CPU than TensorFlow does, and once a model is
converted it needs no TensorFlow at all: a service worker that answers queries from a converted
model is a fraction of the size. Conversion uses Keras' own exporter, once per model key; the
converted files are cached in a folder per key (``model_cache``) and copied into every index
version built with them, so that a worker loads them from the version without converting.

At f32 the vectors are the same as TensorFlow's (cosine >= 0.999 per image, tested). OpenVINO's
own default on CPUs with bf16 units is bf16, which moves vectors by 0.2-0.5 %: the precision is
therefore always asked for by name, and which one an index uses is measured (precision.py). int8 is a
second model file, quantized with NNCF on the collection's own photos, kept beside the conversion.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgsim import config
from imgsim.index.model_key import ModelKey

# OpenVINO's converter and NNCF report usage to Google Analytics unless a consent file in the home
# folder says no; its sender forks a process, which inherits open files (the build's lock) and
# waits on the network. A self-hosted service sends nothing: both fall back to their stubs when
# the package cannot be imported, and a None in sys.modules makes every import of it fail.
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]

MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
KEY_FILE = "model_key.txt"  # written last: its presence means the conversion is complete
VERSION_FOLDER = "openvino"  # where an index version keeps the conversion it was built with
INT8_FOLDER = "openvino-int8"  # and the int8 model quantized from it, where the index is int8
FASTEST_FIRST = ("int8", "bf16", "f32")
_CAPABILITY = {"int8": "INT8", "bf16": "BF16", "f32": "FP32"}  # OpenVINO's OPTIMIZATION_CAPABILITIES


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class Runtime:
    """Which runtime to run networks on, where converted models are kept, and where to say so."""

    name: str = "tensorflow"
    cache: Path | None = None  # None: a temporary folder per conversion
    threads: int = 0  # OpenVINO inference threads; 0 = all cores
    precision: str = "auto"  # auto (f32 unless a build measured better), f32, bf16 or int8
    log: Callable[[str], None] = field(default=_stderr, compare=False)


def of(cfg: config.Config, log: Callable[[str], None] = _stderr, threads: int = 0) -> Runtime:
    """The runtime a configuration asks for."""
    return Runtime(cfg.runtime, cache_root(cfg.model_cache), threads, cfg.precision, log)


@functools.cache
def capabilities() -> frozenset[str]:
    """What OpenVINO says this CPU runs natively: FP32 always, BF16 with AVX512-BF16 or AMX,
    INT8 with VNNI or AMX-INT8 (also emulated, more slowly, on AVX2)."""
    try:
        import openvino

        return frozenset(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # no OpenVINO here: the network runs on TensorFlow, in f32
        return frozenset({"FP32"})


def native_precisions() -> list[str]:
    """The precisions this CPU runs natively, fastest first; f32 is always among them."""
    return [p for p in FASTEST_FIRST if _CAPABILITY[p] in capabilities()]


def runnable(wanted: str, log: Callable[[str], None] = _stderr) -> str:
    """``wanted``, or the next precision down that this CPU runs where it lacks it (said in one line)."""
    if wanted in ("auto", "f32"):
        return "f32"
    native = native_precisions()
    if wanted in native:
        return wanted
    lower = next(p for p in FASTEST_FIRST[FASTEST_FIRST.index(wanted) + 1 :] if p in native)
    listed = ", ".join(sorted(capabilities()))
    log(f"This CPU has no native {wanted} (OpenVINO lists {listed}): running {lower} instead.")
    return lower


def cache_root(setting: str) -> Path:
    """The model_cache setting as a folder: empty means beside Keras' own cache."""
    if setting:
        return Path(setting).expanduser()
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "imgsim-openvino"


def cache_folder(root: Path, stamp: ModelKey | str) -> Path:
    """One folder per model key, or per int8 stamp (keys hold ':' and file names, so the folder is
    named by a hash)."""
    return root / hashlib.sha1(str(stamp).encode()).hexdigest()[:16]


def is_converted(folder: Path, key: ModelKey) -> bool:
    """Whether ``folder`` holds a complete conversion of the model with this key."""
    try:
        return (folder / KEY_FILE).read_text() == str(key) and (folder / MODEL_BIN).is_file()
    except OSError:
        return False


def convert(keras_model: Any, folder: Path, key: ModelKey) -> None:
    """Export a Keras model to OpenVINO into ``folder``.

    Written into a sibling temporary folder and renamed into place, so that a worker or a second
    build converting the same model at the same time never reads half a conversion.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
    try:
        keras_model.export(str(building / MODEL_XML), format="openvino", verbose=False)
        (building / KEY_FILE).write_text(str(key))
        if is_converted(folder, key):
            return  # another process finished first
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def copy_converted(folder: Path, target: Path) -> None:
    """Copy a conversion (or an int8 model) into an index version (hard links where possible)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_XML, MODEL_BIN, KEY_FILE):  # the key file last
        try:
            os.link(folder / name, target / name)
        except OSError:
            shutil.copy2(folder / name, target / name)


def int8_stamp(key: ModelKey, calibration: str) -> str:
    """What an int8 model's key file says: the network it was quantized from and on what."""
    return f"{key.at('f32')}|int8:{calibration}"


def is_quantized(folder: Path, key: ModelKey) -> bool:
    """Whether ``folder`` holds a complete int8 model quantized from the conversion with this key."""
    try:
        return (folder / KEY_FILE).read_text().startswith(int8_stamp(key, "")) and (
            folder / MODEL_BIN
        ).is_file()
    except OSError:
        return False


def quantize(source: Path, folder: Path, stamp: str, batches: list[np.ndarray]) -> None:
    """Quantize the conversion in ``source`` to int8 with NNCF, calibrated on ``batches`` (the
    collection's own photos, preprocessed), into ``folder``, atomically as ``convert`` does.

    The first and last convolutions stay in float: the first sees raw pixels and the last makes
    the vector, and quantizing either cost the most agreement with f32 (docs/benchmarks.md
    section 11). Full bias correction, not the fast one, for the same reason.
    """
    import nncf
    import openvino

    nncf.set_log_level(logging.WARNING)  # its notes and progress bars would go to stdout (--json)
    with contextlib.redirect_stdout(sys.stderr):
        quantized = _quantized(nncf, openvino.Core().read_model(str(source / MODEL_XML)), batches)
    _save(folder, stamp, lambda building: openvino.save_model(quantized, str(building / MODEL_XML)))


def _quantized(nncf: Any, model: Any, batches: list[np.ndarray]) -> Any:
    ops = model.get_ordered_ops()
    convolutions = [op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"]
    ignored = nncf.IgnoredScope(names=[convolutions[0], convolutions[-1]]) if len(convolutions) > 2 else None
    calibration = nncf.Dataset(batches)
    return nncf.quantize(
        model, calibration, subset_size=len(batches), fast_bias_correction=False, ignored_scope=ignored
    )


def _save(folder: Path, stamp: str, write: Callable[[Path], None]) -> None:
    """Write a model into a sibling temporary folder, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder.parent))
    try:
        write(building)
        (building / KEY_FILE).write_text(stamp)
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


class OpenVinoModel:
    """A converted network compiled for the CPU, with Keras' ``predict_on_batch`` surface.

    ``precision`` bf16 runs the f32 conversion in bf16; an int8 model (from ``quantize``) runs its
    quantized layers in int8 and the rest in f32."""

    def __init__(self, folder: Path, threads: int = 0, precision: str = "f32"):
        import openvino

        self.precision = precision
        hint = "bf16" if precision == "bf16" else "f32"
        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
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
