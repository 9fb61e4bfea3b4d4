"""The collection on disk: which image files there are, and what earlier runs already know of them.

A build asks three things here: the files under a folder or glob (``scan``), the vectors that
the current version and an interrupted run already computed (``known_vectors``), and the ids the
current version gave its files (``previous_ids``): ids are identities and survive any rebuild,
whatever the model. Checkpoints of an unfinished run live in ``INDEX_DIR/.partial/``.
"""

from __future__ import annotations

import glob
import itertools
import os
import random
import re
import shutil
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsim import durable, threads
from imgsim.images import imaging
from imgsim.index import store
from imgsim.index.manifest import Manifest
from imgsim.index.model_key import ModelKey

UPLOADS = "uploads"  # the collection's folder for images added through the service
# a file the service stored there (uploads/<uuid hex>.<ext>): indexed once its addition is committed
_UPLOAD_NAME = re.compile(rf"^{UPLOADS}/[0-9a-f]{{32}}\.[a-z]+$")


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the collection root, with forward slashes: the item's identity
    abspath: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Known:
    """A vector computed earlier, valid while the file keeps this size, time or content."""

    size: int
    mtime_ns: int
    sha1: str
    vector: np.ndarray
    features: tuple[Path, int] | None = None  # a killed run's: its checkpoint's features (folder, row)


def scan(dataset: str | Path) -> tuple[Path, list[FileEntry], list[tuple[str, str]]]:
    """The collection root, its image files (by extension), sorted, hidden folders skipped, and the
    files refused with the reason: links to files outside the collection, which the service would
    otherwise serve to anyone who asks for their id."""
    dataset = str(dataset)
    if Path(dataset).is_dir():
        root = Path(dataset).resolve()
        paths: list[Path] = []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            paths.extend(Path(folder, n) for n in sorted(names) if imaging.is_image_path(n))
    elif glob.has_magic(dataset):
        prefix = list(itertools.takewhile(lambda part: not glob.has_magic(part), Path(dataset).parts))
        root = Path(*prefix).resolve() if prefix else Path.cwd()
        # absolute, not resolved: a link out of the collection is then refused, not a crash
        paths = [Path(p).absolute() for p in glob.glob(dataset, recursive=True)]
        paths = sorted(p for p in paths if p.is_file() and imaging.is_image_path(p))
    else:
        raise FileNotFoundError(f"{dataset} is neither a folder nor a glob that matches files")
    outside = [p for p in paths if not inside(root, p)]
    refused = [(p.relative_to(root).as_posix(), OUTSIDE) for p in outside]
    kept = (entry(root, path) for path in paths if path not in outside)
    return root, sorted(kept, key=lambda e: e.path), refused


OUTSIDE = "a link to a file outside the collection: not indexed, never served"


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, links resolved, lies inside the collection ``root``."""
    return path.resolve().is_relative_to(root.resolve())


def entry(root: Path, path: Path) -> FileEntry:
    stat = path.stat()
    return FileEntry(path.relative_to(root).as_posix(), path, stat.st_size, stat.st_mtime_ns)


def catalogued(previous: Previous) -> list[FileEntry]:
    """The files of a version's catalogue as they were when it was built (a compaction's view
    of the collection: it applies the live changes, and img2vec.py finds the rest)."""
    root = Path(previous.manifest.collection_root)
    return [FileEntry(item.path, root / item.path, item.size, item.mtime_ns) for item in previous.items]


def indexable(
    scanned: list[FileEntry], root: Path, deleted: Set[str], uploaded: Set[str], ids: dict[str, int]
) -> list[FileEntry]:
    """The files a version holds: the scanned ones and the uploads, less what was deleted.

    A file the service stored is taken only once its addition is committed (the live state is
    read after the scan): before that it has no id, and numbering it here would give it a second.
    """
    entries = [
        e for e in scanned if e.path not in deleted and (e.path in ids or not _UPLOAD_NAME.match(e.path))
    ]
    present = {e.path for e in entries}
    for path in sorted(uploaded - present - deleted):  # kept even where a glob would miss them
        if (root / path).is_file():
            entries.append(entry(root, root / path))
    return sorted(entries, key=lambda e: e.path)


@dataclass(frozen=True)
class Previous:
    """The current version as a build starts: read once, for its ids and for its vectors."""

    version: Path
    manifest: Manifest
    items: list[store.Item]


def read_previous(index_dir: Path) -> Previous | None:
    try:
        version = store.current_version(index_dir)
    except store.IndexMissing:
        return None
    return Previous(version, store.read_manifest(version), store.read_items(version))


def previous_ids(previous: Previous | None, root: Path) -> dict[str, int]:
    """path -> id of the current version (whatever model built it), for the same collection."""
    if previous is None or previous.manifest.collection_root != str(root):
        return {}
    return {item.path: item.id for item in previous.items}


def known_vectors(index_dir: Path, previous: Previous | None, key: ModelKey, root: Path) -> dict[str, Known]:
    """Vectors of the current version and of an interrupted run, when made by the same model."""
    known: dict[str, Known] = {}
    if previous is not None and (previous.manifest.model_key, previous.manifest.collection_root) == (
        key,
        str(root),
    ):
        row = 0  # each segment's vectors mapped, not read: a build reads only those it writes anew
        for ref in store.read_segments(previous.version):
            vectors = durable.read_array(
                store.segment_dir(previous.version, ref.name) / store.VECTORS_FILE, mapped=True
            )
            for local in store.live_rows(ref):
                item = previous.items[row]
                known[item.path] = Known(item.size, item.mtime_ns, item.sha1, vectors[local])
                row += 1
    for chunk in sorted(store.partial_dir(index_dir).glob("chunk-*.npz")):
        with np.load(chunk) as data:
            if str(data["model_key"]) != str(key) or str(data["root"]) != str(root):
                continue
            inside = "vectors" in data.files  # a chunk saved before its vectors had a file of their own
            vectors = data["vectors"] if inside else durable.read_array(chunk.with_suffix(".npy"))
            features = features_folder(chunk.with_suffix(".npy"))
            for i, path in enumerate(data["paths"]):
                known[str(path)] = Known(
                    int(data["sizes"][i]),
                    int(data["mtimes"][i]),
                    str(data["sha1s"][i]),
                    np.array(vectors[i]),
                    (features, i) if features.is_dir() else None,
                )
    return known


def features_folder(checkpoint: Path) -> Path:
    """Where the local features found with a checkpoint's vectors are kept (index/keypoints.py's
    files, by the checkpoint's rows): a resumed run reads them as the run that found them would."""
    return checkpoint.with_suffix(".features")


def save_checkpoint(
    index_dir: Path, key: ModelKey, root: Path, done: list[tuple[FileEntry, str, np.ndarray]]
) -> Path:
    """Keep the vectors embedded so far, so that a killed run resumes after them: the vectors in
    ``chunk-N.npy`` (returned: the build reads them back from it), then what they are of in
    ``chunk-N.npz``, which makes the chunk (a chunk without it is not one, and is written over)."""
    folder = store.partial_dir(index_dir)
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("chunk-*.npz")))
    vectors = np.stack([v for _, _, v in done]).astype(np.float32)
    kept = folder / f"chunk-{number:06d}.npy"
    durable.atomic_write(kept, lambda handle: np.save(handle, vectors))
    arrays = {
        "model_key": np.array(str(key)),
        "root": np.array(str(root)),
        "paths": np.array([e.path for e, _, _ in done]),
        "sizes": np.array([e.size for e, _, _ in done], dtype=np.int64),
        "mtimes": np.array([e.mtime_ns for e, _, _ in done], dtype=np.int64),
        "sha1s": np.array([s for _, s, _ in done]),
    }
    durable.atomic_write(folder / f"chunk-{number:06d}.npz", lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    return kept


def training_sample(entries: list[FileEntry], limit: int) -> list[FileEntry]:
    """A fixed random sample (the same on every run) for models trained on the collection."""
    return entries if len(entries) <= limit else random.Random(0).sample(entries, limit)


def decode_square(entries: list[FileEntry], side: int, max_pixels: int, workers: int) -> np.ndarray:
    """The readable ones among ``entries`` as uint8 side x side RGB, decoded in threads."""

    def decode(item: FileEntry) -> np.ndarray | None:
        try:
            return imaging.to_square(imaging.open_rgb(item.abspath, max_pixels, 2 * side), side)
        except imaging.UnreadableImage:
            return None

    decoded = [future.result() for _, future in threads.prefetch(entries, decode, workers, 64)]
    return np.stack([pixels for pixels in decoded if pixels is not None])


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
