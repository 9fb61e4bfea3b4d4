"""The precision a build embeds in: asked for, kept from the version before, or measured.

``auto`` measures only when it must (a first build, or a new model): it embeds a fixed sample of
the collection's own photos and edited copies of some of them at f32 and at each faster precision
this CPU runs natively, and keeps the fastest that agrees (models/agreement.py). A later build of
the same model keeps the version's precision and, for int8, its very quantized model, so that the
vectors of one index are always made the same way.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim import config, threads
from imgsim.images import edits, geometry, imaging
from imgsim.index.manifest import Agreement, PrecisionRecord
from imgsim.index.model_key import ModelKey
from imgsim.indexing import collection
from imgsim.indexing.collection import FileEntry
from imgsim.indexing.embed_contract import local_features
from imgsim.models import agreement, embedders, runtimes
from imgsim.models.embedders import Embedder

EDITED_PHOTOS = 30  # photos of the sample whose edited copies (edits.CALIBRATION) are checked too

Log = Callable[[str], None]


@dataclass
class Choice:
    """What the build embeds in, why, and what was measured to decide it."""

    precision: str
    how: str  # "asked", "kept" (from the version before), "measured", or "f32 only" (no OpenVINO)
    embedder: Embedder | None = None  # loaded at that precision, where deciding needed it
    measured: list[Agreement] = field(default_factory=list)
    # the sample's vectors at that precision, path -> (sha1, vector): the build need not embed them again
    vectors: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    # and their local features, found from the same decode: the build need not decode them again
    features: dict[str, geometry.Features] = field(default_factory=dict)

    def record(self, asked: str) -> PrecisionRecord:
        """What the manifest keeps of the choice."""
        return PrecisionRecord(asked, self.how, sorted(runtimes.capabilities()), self.measured)


def decide(
    cfg: config.Config,
    entries: list[FileEntry],
    current: collection.Previous | None,
    network_key: ModelKey,
    embedder: Embedder | None,
    log: Log,
) -> Choice:
    """The precision for a build of ``entries`` with the network of ``network_key``."""
    if embedder is not None:  # made by the caller (a compaction, a trained autoencoder)
        return Choice(embedder.precision, "given", embedder)
    if cfg.runtime != "openvino":
        return Choice("f32", "f32 only")
    before = current.manifest if current is not None else None
    if before is not None and before.model_key.at("f32") == network_key:
        was = before.model_key.precision
        if cfg.precision in ("auto", was):  # the same model again: its vectors made the same way
            kept = runtimes.runnable(was, log)
            measured = before.precision_choice.measured if before.precision_choice else []
            return Choice(kept, "kept", None, measured)  # loaded only if something is to be embedded
    asked = runtimes.runnable(cfg.precision, log)
    native = runtimes.native_precisions()
    if asked == "f32" and (cfg.precision != "auto" or native == ["f32"]):
        return Choice("f32", "asked" if cfg.precision != "auto" else "f32 only")
    reference = embedders.from_config(cfg.replace(precision="f32"), log)
    if reference.runtime != "openvino":  # OpenVINO could not convert it: TensorFlow runs it, in f32
        return Choice("f32", "f32 only", reference)
    sample = collection.training_sample(entries, cfg.precision_sample)
    if cfg.precision != "auto":  # asked for by name: run as asked, nothing to measure but int8's calibration

        def sample_photos() -> np.ndarray:  # read only if no quantized model is cached
            return _photos(sample, reference, cfg, edited=0)[0]

        int8_model = (
            _int8(cfg, reference, network_key, sample, sample_photos, log)() if asked == "int8" else None
        )
        chosen = asked if asked != "int8" or int8_model else runtimes.runnable("bf16", log)
        return Choice(chosen, "asked", embedders.at_precision(reference, chosen, int8_model))
    originals, copies, owners, read = _photos(sample, reference, cfg, features=True)
    quantized = _int8(cfg, reference, network_key, sample, lambda: originals, log)
    # int8 calibrates on the sample: a collection with fewer photos than it asks for gets no int8
    candidates = [p for p in native if p != "int8" or len(originals) >= cfg.precision_sample]

    def embed_at(chosen: str) -> agreement.Embed | None:
        if chosen == "f32":
            return _in_batches(reference.embed, cfg.batch_size)
        if chosen == "int8" and quantized() is None:
            return None
        model = embedders.at_precision(reference, chosen, quantized() if chosen == "int8" else None)
        return _in_batches(model.embed, cfg.batch_size)

    measuring = f"{len(originals)} photos and {len(copies)} edited copies"
    log(f"Measuring {', '.join(candidates)} against f32 on {measuring} of the collection ...")
    chosen, measured, vectors = agreement.choose(
        candidates, embed_at, originals, copies, owners, time.perf_counter
    )
    for checked in measured[1:]:
        verdict = "agrees" if checked.passed else "misses: " + "; ".join(checked.misses)
        scores = f"cosine {checked.mean_cosine:.4f}, top-10 {checked.top10:.3f}"
        log(f"  {checked.precision}: {scores} ({verdict})")
    log(f"Embedding in {chosen} (the fastest that agrees with f32 on this collection).")
    model = embedders.at_precision(reference, chosen, quantized() if chosen == "int8" else None)
    reused = {entry.path: (sha1, vector) for (entry, sha1, _), vector in zip(read, vectors, strict=True)}
    found = {entry.path: features for entry, _, features in read if features is not None}
    return Choice(chosen, "measured", model, measured, reused, found)


def _in_batches(embed: agreement.Embed, size: int) -> agreement.Embed:
    """``embed`` run on at most ``size`` pictures at a time, as the build embeds: the whole sample
    in one pass (up to 300 photos and 150 edited copies) made a first build's peak memory that
    pass's (299 flowers5 photos with InceptionV3: 8.7 GB, 2.3 GB in batches; docs/benchmarks.md
    section 20)."""

    def run(pixels: np.ndarray) -> np.ndarray:
        if len(pixels) <= size:
            return embed(pixels)
        return np.concatenate([embed(pixels[start : start + size]) for start in range(0, len(pixels), size)])

    return run


def load_at(cfg: config.Config, chosen: str, current: collection.Previous | None, log: Log) -> Embedder:
    """The configured model at ``chosen`` (int8: the quantized model the current version carries)."""
    quantized = current.version / runtimes.INT8_FOLDER if chosen == "int8" and current is not None else None
    reference = embedders.from_config(cfg.replace(precision="f32"), log)
    if chosen == "f32":
        return reference
    return embedders.at_precision(reference, chosen, quantized)


def _photos(
    sample: list[FileEntry],
    embedder: Embedder,
    cfg: config.Config,
    edited: int = EDITED_PHOTOS,
    features: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[FileEntry, str, geometry.Features | None]]]:
    """The sample as network input (uint8), edited copies of its first ``edited`` photos, whose
    copy each is, and which file (with its content hash and, with ``features``, its local features
    found from the same decode) each original is; decoded in threads, in order."""
    originals: list[np.ndarray] = []
    copies: list[np.ndarray] = []
    owners: list[int] = []
    read: list[tuple[FileEntry, str, geometry.Features | None]] = []

    def load(entry: FileEntry) -> tuple[str, Image.Image, geometry.Features | None] | None:
        try:
            data = imaging.read_file(entry.abspath, cfg.max_file_bytes)
            image = imaging.decode_rgb(data, cfg.max_image_pixels, embedder.decode_side)  # as embedding does
        except imaging.UnreadableImage:
            return None
        found = local_features(data, image, cfg.max_image_pixels) if features else None
        return hashlib.sha1(data).hexdigest(), image, found

    workers = config.decode_threads(cfg)
    for entry, future in threads.prefetch(sample, load, workers, 2 * workers):
        loaded = future.result()
        if loaded is None:
            continue
        sha1, image, found = loaded
        read.append((entry, sha1, found))
        if len(originals) < edited:
            for name in edits.CALIBRATION:
                copies.append(embedder.prepare(edits.apply(name, image)))
                owners.append(len(originals))
        originals.append(embedder.prepare(image))
    side = embedder.input_size
    empty = np.zeros((0, side, side, 3), np.uint8)
    return (
        np.stack(originals) if originals else empty,
        np.stack(copies) if copies else empty,
        np.array(owners),
        read,
    )


def _int8(
    cfg: config.Config,
    reference: Embedder,
    network_key: ModelKey,
    sample: list[FileEntry],
    originals: Callable[[], np.ndarray],
    log: Log,
) -> Callable[[], Path | None]:
    """The int8 model of this network calibrated on ``sample``, quantized the first time it is asked
    for and cached per model key and calibration; None where NNCF cannot quantize it."""
    photos = "\n".join(f"{e.path}:{e.size}:{e.mtime_ns}" for e in sample)
    key = runtimes.int8_stamp(network_key, hashlib.sha1(photos.encode()).hexdigest()[:16])
    cache = runtimes.cache_root(cfg.model_cache)
    folder = runtimes.cache_folder(cache, key)
    made: list[Path | None] = []

    def quantized() -> Path | None:
        if not made:
            made.append(_quantize(reference, folder, key, originals, log))
        return made[0]

    return quantized


def _quantize(
    reference: Embedder, folder: Path, key: str, photos: Callable[[], np.ndarray], log: Log
) -> Path | None:
    try:
        if (folder / runtimes.KEY_FILE).is_file() and (folder / runtimes.KEY_FILE).read_text() == key:
            return folder
        originals = photos()
        log(f"Quantizing {reference.name} to int8 with NNCF on {len(originals)} of the collection's photos")
        batches = [
            reference.preprocess(originals[i : i + 1].astype(np.float32)) for i in range(len(originals))
        ]
        assert reference.converted is not None  # the caller checked it runs on OpenVINO
        runtimes.quantize(reference.converted, folder, key, batches)
        return folder
    except Exception as error:  # NNCF missing or failing on this model: int8 is not a candidate
        log(f"int8 is not available for {reference.name} ({str(error).strip().splitlines()[0]}).")
        return None
