"""Turn a collection of images into vectors and (re)build the search index.

    python img2vec.py DATASET [--model inception_v3] [--reduce none|autoencoder|pca] [--index-dir rsc_files]

DATASET is a folder (walked recursively) or a glob such as ``'photos/**/*.jpg'``. Rerunning it is how
the index is rebuilt: only new or changed files are embedded, vectors of deleted files are dropped,
and an interrupted run resumes where it stopped. The new version is switched in atomically.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import itertools
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import autoencoder
import config
import imaging
import live
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

    def prepare(self, image) -> np.ndarray:
        """Resize a PIL RGB image to the network's square input, as uint8 pixels."""
        from PIL import Image

        side = self.input_size
        return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        batch = self.preprocess(np.array(pixels, dtype=np.float32))
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)

    def embed_images(self, images: Iterable) -> np.ndarray:
        return self.embed(np.stack([self.prepare(image) for image in images]))


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            weights_id = f"{Path(weights).name}:{_file_sha1(Path(weights))[:12]}"
        return f"{model}:{weights_id}:{side}"
    path = Path(model)
    if not path.is_file():
        raise WeightsUnavailable(
            f"unknown model {model!r}: use one of {', '.join(BACKBONES)} or the path of a .keras file"
        )
    return f"file:{path.name}:{_file_sha1(path)[:12]}:{image_size}"


def load_embedder(model: str, weights: str | None = "imagenet", image_size: int = 0) -> Embedder:
    """Load a backbone by name (penultimate layer, global average pool) or a .keras model file.

    ``weights`` is "imagenet" (downloaded once into the Keras cache), a local weights file, or
    None for random weights (only good for measuring speed). Never falls back silently: missing
    weights raise WeightsUnavailable saying how to provide them.
    """
    import keras

    key = model_key(model, weights, image_size)
    if model in BACKBONES:
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

    network = keras.saving.load_model(model)
    declared = network.input_shape[1]
    side = image_size or declared
    if not side:
        raise ValueError(f"{model} has no fixed input size: pass --image-size")
    if len(network.output_shape) != 2:
        raise ValueError(f"{model} must output one vector per image, not {network.output_shape}")
    source = str(Path(model).resolve())
    return Embedder(Path(model).stem, source, None, key, side, network.output_shape[-1], network, lambda x: x)


def pixel_embedder(
    cfg: config.Config,
    entries: list[FileEntry],
    root: Path,
    retrain: bool = False,
    plot: Path | None = None,
    verbose: int = 2,
    log: Callable[[str], None] = print,
) -> Embedder:
    """An autoencoder trained on the collection's own pixels (``cfg.model`` convae or simpleae).

    Reuses the one the current index was built with (or one whose embedding run was interrupted)
    unless ``retrain``; otherwise trains a new one. The trained files stay under .partial/ until
    a version built with them is published, so a failed training never replaces the old model.
    """
    import dataclasses
    import random

    kind = cfg.model
    side = autoencoder.PIXEL_MODELS[kind]
    fresh = store.partial_dir(cfg.index_dir) / kind
    folders = [fresh]
    try:
        version = store.current_version(cfg.index_dir)
        manifest = store.read_manifest(version)
        if manifest.get("model_source") == kind and manifest.get("collection_root") == str(root):
            folders.insert(0, version)
    except store.IndexMissing:
        pass
    trained = (
        None if retrain else next((f for f in folders if (f / autoencoder.ENCODER_FILE).is_file()), None)
    )
    sample = entries
    if len(entries) > cfg.ae_train_images:
        sample = random.Random(0).sample(entries, cfg.ae_train_images)
    if trained is None or plot is not None:
        images = _decode_square(sample if trained is None else sample[:8], side, cfg)
    if trained is None:
        log(f"Training {kind} on {len(images)} images of {side}x{side} (early stopping) ...")
        began = time.perf_counter()
        full, encoder, history = autoencoder.train_pixel_autoencoder(
            kind, images, cfg.dims, cfg.ae_epochs, verbose=verbose
        )
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
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
        autoencoder.plot_reconstructions(full, images, plot)
        log(f"Reconstructions: {plot}")
    loaded = load_embedder(str(trained / autoencoder.ENCODER_FILE))
    return dataclasses.replace(loaded, name=kind, source=kind, trained_files=trained)


def _decode_square(entries: list[FileEntry], side: int, cfg: config.Config) -> np.ndarray:
    """The readable ones among ``entries`` as uint8 side x side RGB, decoded in threads."""
    from PIL import Image

    def decode(entry: FileEntry):
        try:
            image = imaging.open_rgb(entry.abspath, cfg.max_image_pixels)
        except imaging.UnreadableImage:
            return None
        return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)

    decoded = [f.result() for _, f in _prefetch(entries, decode, cfg.decode_workers, 64)]
    return np.stack([pixels for pixels in decoded if pixels is not None])


# --- the collection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the collection root, with forward slashes: the item's identity
    abspath: Path
    size: int
    mtime_ns: int


def scan_collection(dataset: str | Path) -> tuple[Path, list[FileEntry]]:
    """The collection root and its image files (by extension), sorted, hidden folders skipped."""
    dataset = str(dataset)
    if Path(dataset).is_dir():
        root = Path(dataset).resolve()
        paths = []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            paths.extend(Path(folder, n) for n in sorted(names) if imaging.is_image_path(n))
    elif glob.has_magic(dataset):
        prefix = []
        for part in Path(dataset).parts:
            if glob.has_magic(part):
                break
            prefix.append(part)
        root = Path(*prefix).resolve() if prefix else Path.cwd()
        paths = [Path(p).resolve() for p in glob.glob(dataset, recursive=True)]
        paths = sorted(p for p in paths if p.is_file() and imaging.is_image_path(p))
    else:
        raise FileNotFoundError(f"{dataset} is neither a folder nor a glob that matches files")
    entries = []
    for path in paths:
        stat = path.stat()
        rel = path.relative_to(root).as_posix()
        entries.append(FileEntry(rel, path, stat.st_size, stat.st_mtime_ns))
    return root, sorted(entries, key=lambda e: e.path)


# --- what earlier runs already embedded -------------------------------------------------------


@dataclass
class Known:
    size: int
    mtime_ns: int
    sha1: str
    vector: np.ndarray


def previous_vectors(index_dir: Path, key: str, root: Path) -> tuple[dict[str, Known], dict]:
    """Vectors of the current version and of an interrupted run, when made by the same model."""
    known: dict[str, Known] = {}
    previous: dict = {}
    try:
        version = store.current_version(index_dir)
        manifest = store.read_manifest(version)
        if manifest.get("model_key") == key and manifest.get("collection_root") == str(root):
            previous = manifest
            vectors = np.load(version / "vectors.npy")
            items = store.read_json(version / "items.json")
            for row, item in enumerate(items):
                known[item["path"]] = Known(item["size"], item["mtime_ns"], item["sha1"], vectors[row])
            previous["ids"] = {item["path"]: item["id"] for item in items}
    except store.IndexMissing:
        pass
    for chunk in sorted(store.partial_dir(index_dir).glob("chunk-*.npz")):
        with np.load(chunk) as data:
            if str(data["model_key"]) != key or str(data["root"]) != str(root):
                continue
            for i, path in enumerate(data["paths"]):
                known[str(path)] = Known(
                    int(data["sizes"][i]),
                    int(data["mtimes"][i]),
                    str(data["sha1s"][i]),
                    np.array(data["vectors"][i]),
                )
    return known, previous


def _save_checkpoint(
    index_dir: Path, key: str, root: Path, done: list[tuple[FileEntry, str, np.ndarray]]
) -> None:
    folder = store.partial_dir(index_dir)
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("chunk-*.npz")))
    target = folder / f"chunk-{number:06d}.npz"
    tmp = folder / f".tmp-{number:06d}"
    with open(tmp, "wb") as handle:
        np.savez(
            handle,
            model_key=np.array(key),
            root=np.array(str(root)),
            paths=np.array([e.path for e, _, _ in done]),
            sizes=np.array([e.size for e, _, _ in done], dtype=np.int64),
            mtimes=np.array([e.mtime_ns for e, _, _ in done], dtype=np.int64),
            sha1s=np.array([s for _, s, _ in done]),
            vectors=np.stack([v for _, _, v in done]).astype(np.float32),
        )
    os.replace(tmp, target)


# --- embedding --------------------------------------------------------------------------------


def _prefetch(items: list, work: Callable, workers: int, ahead: int) -> Iterator[tuple[object, Future]]:
    """Run ``work`` on items in threads, at most ``ahead`` in flight, yielding in input order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        source = iter(items)
        pending = deque((item, pool.submit(work, item)) for item in itertools.islice(source, ahead))
        while pending:
            item, future = pending.popleft()
            for nxt in itertools.islice(source, 1):
                pending.append((nxt, pool.submit(work, nxt)))
            yield item, future


@dataclass
class EmbedResult:
    vectors: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # path -> (sha1, vector)
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0


def embed_files(
    entries: list[FileEntry],
    embedder: Embedder,
    cfg: config.Config,
    known_sha1: dict[str, tuple[str, np.ndarray]],
    checkpoint: Callable[[list], None] | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed files in batches while threads decode the next ones; unreadable files are skipped.

    A file whose content hash is in ``known_sha1`` (touched, not changed) reuses its vector.
    """
    from tqdm import tqdm

    result = EmbedResult()
    started = time.perf_counter()

    def decode(entry: FileEntry):
        try:
            data = entry.abspath.read_bytes()
        except OSError as error:
            return imaging.UnreadableImage(f"cannot read file: {error.strerror or error}")
        sha1 = hashlib.sha1(data).hexdigest()
        old = known_sha1.get(entry.path)
        if old is not None and old[0] == sha1:
            return sha1, None
        try:
            image = imaging.decode_rgb(data, cfg.max_image_pixels)
        except imaging.UnreadableImage as error:
            return error
        return sha1, embedder.prepare(image)

    batch: list[tuple[FileEntry, str, np.ndarray]] = []
    unsaved: list[tuple[FileEntry, str, np.ndarray]] = []

    def run_batch() -> None:
        vectors = embedder.embed(np.stack([pixels for _, _, pixels in batch]))
        for (entry, sha1, _), vector in zip(batch, vectors, strict=True):
            result.vectors[entry.path] = (sha1, vector)
            unsaved.append((entry, sha1, vector))
        result.embedded += len(batch)
        bar.update(len(batch))
        batch.clear()
        if checkpoint is not None and len(unsaved) >= cfg.checkpoint_every:
            checkpoint(list(unsaved))
            unsaved.clear()

    bar = tqdm(total=len(entries), unit="img", desc="Embedding", disable=not progress, smoothing=0.1)
    ahead = 2 * cfg.batch_size
    try:
        for entry, future in _prefetch(entries, decode, cfg.decode_workers, ahead):
            outcome = future.result()
            if isinstance(outcome, imaging.UnreadableImage):
                result.skipped.append((entry.path, str(outcome)))
                bar.update(1)
                bar.write(f"skipped {entry.path}: {outcome}")
                continue
            sha1, pixels = outcome
            if pixels is None:
                result.vectors[entry.path] = (sha1, known_sha1[entry.path][1])
                bar.update(1)
                continue
            batch.append((entry, sha1, pixels))
            if len(batch) >= cfg.batch_size:
                run_batch()
        if batch:
            run_batch()
    except KeyboardInterrupt:
        if checkpoint is not None and unsaved:
            checkpoint(unsaved)
            print(f"\nInterrupted: {len(result.vectors)} embeddings saved; rerun to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
    result.seconds = time.perf_counter() - started
    return result


# --- a build ----------------------------------------------------------------------------------


@dataclass
class BuildReport:
    version: Path
    items: int
    embedded: int
    reused: int
    removed: int
    skipped: list[tuple[str, str]]
    embed_seconds: float
    seconds: float
    up_to_date: bool = False


def build_index(
    dataset: str | Path,
    cfg: config.Config,
    embedder: Embedder | None = None,
    progress: bool = True,
    full: bool = False,
    log: Callable[[str], None] = print,
    retrain: bool = False,
    plot: Path | None = None,
) -> BuildReport:
    """Bring the index in ``cfg.index_dir`` up to date with the images under ``dataset``."""
    started = time.perf_counter()
    weights = None if cfg.weights == "none" else cfg.weights
    with store.build_lock(cfg.index_dir):
        root, entries = scan_collection(dataset)
        deleted = live.deleted_paths(cfg.index_dir)  # removed through the API or --remove
        entries = [e for e in entries if e.path not in deleted]
        if not entries:
            raise FileNotFoundError(
                f"no images found in {dataset} (looked for {', '.join(sorted(imaging.IMAGE_EXTENSIONS))})"
            )
        if embedder is None and cfg.model in autoencoder.PIXEL_MODELS:
            embedder = pixel_embedder(cfg, entries, root, retrain, plot, 2 if progress else 0, log)
        key = embedder.key if embedder else model_key(cfg.model, weights, cfg.image_size)
        known, previous = ({}, {}) if full else previous_vectors(cfg.index_dir, key, root)
        uploads = live.additions_by_path(cfg.index_dir, key)  # added while the service ran
        scanned = {e.path for e in entries}
        for path, (_, size, mtime_ns, sha1, vector) in uploads.items():
            if not full:  # --full re-embeds uploads too
                known.setdefault(path, Known(size, mtime_ns, sha1, vector))
            if path not in scanned and path not in deleted and (root / path).is_file():
                entries.append(FileEntry(path, root / path, size, mtime_ns))  # even if a glob misses it
        entries.sort(key=lambda e: e.path)
        current = {e.path for e in entries}
        unchanged = {
            e.path: (known[e.path].sha1, known[e.path].vector)
            for e in entries
            if e.path in known and (known[e.path].size, known[e.path].mtime_ns) == (e.size, e.mtime_ns)
        }
        to_embed = [e for e in entries if e.path not in unchanged]
        removed = len(set(previous.get("ids", {})) - current)
        same_settings = (
            previous
            and all(previous.get(name) == getattr(cfg, name) for name in ("reduce", "trees", "metric"))
            and (cfg.reduce == "none" or previous.get("dims") == cfg.dims)
        )
        if not to_embed and not removed and same_settings and previous.get("items") == len(entries):
            log(f"Index is up to date: {len(entries)} images, nothing to embed.")
            version = store.current_version(cfg.index_dir)
            return BuildReport(
                version,
                len(entries),
                0,
                len(entries),
                0,
                [],
                0.0,
                time.perf_counter() - started,
                up_to_date=True,
            )
        log(
            f"{len(entries)} images in {root}: {len(unchanged)} unchanged, {len(to_embed)} to embed"
            + (f", {removed} removed" if removed else "")
        )

        result = EmbedResult()
        if to_embed:
            if embedder is None:
                embedder = load_embedder(cfg.model, weights, cfg.image_size)
            log(
                f"Model {embedder.name}: {embedder.input_size}x{embedder.input_size} in, {embedder.dim}-d out"
            )
            known_sha1 = {p: (k.sha1, k.vector) for p, k in known.items()}
            result = embed_files(
                to_embed,
                embedder,
                cfg,
                known_sha1,
                checkpoint=lambda done: _save_checkpoint(cfg.index_dir, key, root, done),
                progress=progress,
            )
        vectors_by_path = unchanged | result.vectors
        kept = [e for e in entries if e.path in vectors_by_path]
        if not kept:
            raise RuntimeError("none of the images could be read; nothing to index")
        ids = {path: upload[0] for path, upload in uploads.items()} | dict(previous.get("ids", {}))
        next_id = max(int(previous.get("next_id", 0)), live.next_id(cfg.index_dir))
        items = []
        for entry in kept:
            if entry.path not in ids:
                ids[entry.path] = next_id
                next_id += 1
            sha1 = vectors_by_path[entry.path][0]
            items.append(
                {
                    "id": ids[entry.path],
                    "path": entry.path,
                    "size": entry.size,
                    "mtime_ns": entry.mtime_ns,
                    "sha1": sha1,
                }
            )
        vectors = np.stack([vectors_by_path[e.path][1] for e in kept]).astype(np.float32)
        version = _write_version(
            cfg,
            key,
            root,
            items,
            vectors,
            result,
            next_id,
            started,
            embedder,
            previous,
            log,
            verbose=2 if progress else 0,
            dataset=os.path.abspath(str(dataset)),
        )
        live.forget_compacted(cfg.index_dir, {item["id"] for item in items if item["path"] in uploads})
    return BuildReport(
        version,
        len(items),
        result.embedded,
        len(unchanged) + (len(result.vectors) - result.embedded),
        removed,
        result.skipped,
        result.seconds,
        time.perf_counter() - started,
    )


def _write_version(
    cfg, key, root, items, vectors, result, next_id, started, embedder, previous, log, verbose=2, dataset=""
) -> Path:
    import ann

    building = store.start_version(cfg.index_dir)
    try:
        np.save(building / "vectors.npy", vectors)
        if embedder is not None and embedder.trained_files is not None:
            for trained in embedder.trained_files.glob("*.keras"):
                shutil.copy2(trained, building / trained.name)
        store.write_json(building / "items.json", items)
        store.write_json(building / "skipped.json", [{"path": p, "reason": r} for p, r in result.skipped])
        index_vectors = vectors
        if cfg.reduce != "none":
            fitted = autoencoder.fit_for_build(cfg.reduce, vectors, cfg, key, log=log, verbose=verbose)
            autoencoder.save_reducer(cfg.reduce, fitted, building)
            index_vectors = autoencoder.load_reducer(cfg.reduce, building)(vectors)
        log(
            f"Building Annoy index: {len(items)} vectors x {index_vectors.shape[1]} dims, "
            f"{cfg.trees} trees ..."
        )
        build_started = time.perf_counter()
        ann.build(index_vectors, building / "index.ann", cfg.metric, cfg.trees)
        build_seconds = time.perf_counter() - build_started
        manifest = {
            "format_version": store.FORMAT_VERSION,
            "model": embedder.name if embedder else previous.get("model", cfg.model),
            "model_source": embedder.source if embedder else previous.get("model_source", cfg.model),
            "model_key": key,
            "weights": _weights_name(embedder.weights) if embedder else previous.get("weights", cfg.weights),
            "input_size": embedder.input_size if embedder else previous.get("input_size"),
            "embedding_dim": int(vectors.shape[1]),
            "reduce": cfg.reduce,
            "dims": int(index_vectors.shape[1]),
            "metric": cfg.metric,
            "trees": cfg.trees,
            "items": len(items),
            "skipped": len(result.skipped),
            "next_id": next_id,
            "collection_root": str(root),
            "dataset": dataset,  # the folder or glob given: compaction rebuilds from the same
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - started, 2),
            "annoy_build_seconds": round(build_seconds, 2),
            "embedded_this_run": result.embedded,
        }
        store.write_json(building / "manifest.json", manifest)
        version = store.publish(cfg.index_dir, building, keep=cfg.keep_versions)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    shutil.rmtree(store.partial_dir(cfg.index_dir), ignore_errors=True)
    return version


def _weights_name(weights: str | None) -> str:
    return "none" if weights is None else weights


# --- the built-in sample collection -----------------------------------------------------------


def export_sample_images(target: Path) -> Path:
    """Copy scikit-image's bundled sample photos into ``target`` (a small, offline collection)."""
    import skimage

    source = Path(skimage.__file__).parent / "data"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        # multipage_rgb.tif uses a TIFF layout Pillow cannot read; keep the first run clean
        if path.name == "multipage_rgb.tif":
            continue
        if imaging.is_image_path(path) and not (target / path.name).exists():
            shutil.copy2(path, target / path.name)
    return target


def sample_embedder(cfg: config.Config, log=print) -> Embedder:
    """The best model available here: InceptionV3 with ImageNet weights, else the shared
    EfficientNet-Lite0 (announced, never silent), else a clear error."""
    try:
        return load_embedder(cfg.model, None if cfg.weights == "none" else cfg.weights, cfg.image_size)
    except WeightsUnavailable as error:
        if not config.SHARED_MODEL.is_file():
            raise
        log(f"{error}\n-> Using the pretrained EfficientNet-Lite0 from {config.SHARED_MODEL} instead.")
        return load_embedder(str(config.SHARED_MODEL))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Embed every image under DATASET and (re)build the similarity index. "
        "Reruns embed only new or changed files.",
        epilog="Example: python img2vec.py ~/Pictures --reduce pca",
    )
    parser.add_argument("dataset", nargs="?", help="folder of images (recursive) or a quoted glob")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="index scikit-image's sample photos (copied to INDEX_DIR/sample_images) "
        "with the best model available here",
    )
    parser.add_argument("--full", action="store_true", help="re-embed every image, ignoring earlier runs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--add",
        nargs="+",
        metavar="FILE",
        help="add images to the running index (copied into the collection's uploads/)",
    )
    parser.add_argument("--remove", nargs="+", type=int, metavar="ID", help="remove items by id")
    parser.add_argument(
        "--retrain", action="store_true", help="with --model convae/simpleae: train the autoencoder again"
    )
    parser.add_argument(
        "--plot",
        metavar="OUT.png",
        help="with --model convae/simpleae: write a few images and their reconstructions",
    )
    config.add_flags(
        parser,
        "index_dir",
        "model",
        "weights",
        "image_size",
        "batch_size",
        "decode_workers",
        "checkpoint_every",
        "reduce",
        "dims",
        "trees",
        "metric",
        "epochs",
        "ae_epochs",
        "ae_train_images",
        "keep_versions",
    )
    args = parser.parse_args(argv)
    if not args.dataset and not args.sample and not args.add and not args.remove:
        parser.error("give a DATASET folder or glob, --sample, --add FILE... or --remove ID...")
    cfg = config.load(args=args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.add or args.remove:
        return edit_live(cfg, args.add or [], args.remove or [])
    try:
        embedder = None
        dataset = args.dataset
        if args.sample:
            dataset = export_sample_images(Path(cfg.index_dir) / "sample_images")
            embedder = sample_embedder(cfg)
        report = build_index(
            dataset,
            cfg,
            embedder,
            progress=not args.no_progress,
            full=args.full,
            retrain=args.retrain,
            plot=Path(args.plot) if args.plot else None,
        )
    except (WeightsUnavailable, store.BuildInProgress, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if report.skipped:
        print(f"Skipped {len(report.skipped)} unreadable file(s):", file=sys.stderr)
        for path, reason in report.skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
    if not report.up_to_date:
        rate = report.embedded / report.embed_seconds if report.embed_seconds else 0.0
        print(
            f"Indexed {report.items} images into {report.version} in {report.seconds:.1f} s "
            f"(embedded {report.embedded} at {rate:.1f} img/s, reused {report.reused}, "
            f"removed {report.removed}, skipped {len(report.skipped)})."
        )
    return 0


def edit_live(cfg: config.Config, files: list[str], ids: list[int]) -> int:
    """--add / --remove: the same durable changes as POST and DELETE /images, without the service."""
    import ann

    try:
        index = ann.open_index(cfg.index_dir)
        embedder = ann.query_embedder(index.manifest, index.version) if files else None
    except (store.IndexMissing, WeightsUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = 0
    with live.writer(cfg.index_dir) as conn:
        for name in files:
            try:
                data = Path(name).read_bytes()
                image = imaging.decode_rgb(data, cfg.max_image_pixels)
                added = live.add_image(conn, index, embedder, data, image, {"original_name": Path(name).name})
                print(f"added {name} as id {added['id']} ({added['path']})")
            except (OSError, imaging.UnreadableImage) as error:
                failures += 1
                print(f"cannot add {name}: {error}", file=sys.stderr)
        view = live.LiveLayer(cfg.index_dir).view(index)
        for item_id in ids:
            path = live.remove_item(conn, index, view, item_id)
            if path is None:
                failures += 1
                print(f"no item with id {item_id}", file=sys.stderr)
            else:
                print(f"removed {item_id} ({path})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
