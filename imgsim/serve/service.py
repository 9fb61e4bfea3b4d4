"""The search service without the web: what a worker answers from, and every operation on it.

A Service owns the index it answers from (holder.py: IndexHolder follows ``current`` when a
rebuild moves it, and keeps the model that embeds queries for that version), the live layer
(additions and deletions since the build) and a Compactor (compaction.py), which writes the delta
into the index in the background once it is large. The build function is given to it, not
imported, so the service sits below the indexer.
Every request works on one Snapshot and one LiveView from start to end, whatever happens meanwhile.
Failures a client caused are ServiceErrors: the web layer turns them into 4xx answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim import config, durable
from imgsim.duplicates import finding, grouping
from imgsim.images import imaging
from imgsim.index import queries, store
from imgsim.indexing import collection
from imgsim.live import live
from imgsim.measure import plots
from imgsim.models import embedders, tta
from imgsim.query import pipeline
from imgsim.serve import metrics
from imgsim.serve.compaction import Build, Compactor
from imgsim.serve.holder import Answer, IndexHolder, Snapshot

__all__ = ["THUMB_SIDE", "Answer", "Catalogued", "IndexHolder", "Service", "ServiceError", "Snapshot"]

THUMB_SIDE = 256
Catalogued = store.Item | live.Addition  # an item of the base index or of the delta


class ServiceError(Exception):
    """A request the service cannot answer, with a status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _id_query(item: Catalogued) -> dict:
    """How an answer describes a search by an indexed image."""
    return {"type": "id", "id": item.id, "path": item.path, "url": f"/images/{item.id}"}


class Service:
    """Everything a worker does for a request, given a configuration (and, to compact, a build)."""

    def __init__(
        self,
        cfg: config.Config,
        build: Build | None = None,
        embedder: embedders.Embedder | None = None,
        logger: logging.Logger | None = None,
    ):
        self.cfg = cfg
        self.logger = logger or logging.getLogger("imgsim")
        self.holder = IndexHolder(cfg, embedder, self.logger.warning)
        live_store = live.open_store(cfg.index_dir, cfg.live_url)
        self.live = live.LiveLayer(live_store)
        self.compactor = Compactor(cfg, build, live_store, self.logger) if build is not None else None
        self.started = time.time()
        self.counts: Counter[str] = Counter()
        self._map_lock = threading.Lock()  # one t-SNE map at a time
        self._duplicates_lock = threading.Lock()  # one duplicates search (of an old version) at a time
        self._duplicates: dict[tuple[str, float | None], tuple[float, list[grouping.Group]]] = {}

    def close(self) -> None:
        """Give back the live store's connections (PostgreSQL) at shutdown."""
        self.live.store.close()

    def start(self) -> None:
        """Load the model and index now (in the worker, after the fork) and resume a compaction
        that a crash or restart interrupted."""
        snap = self.holder.get()
        if snap is not None:
            self._maybe_compact(snap)

    def current(self, allow_empty: bool = False) -> tuple[Snapshot, live.LiveView]:
        """The index version and live delta that this whole request answers from."""
        snap = self.holder.get()
        if snap is None:
            raise ServiceError(409, "no_index", "The index is not built yet: run `python img2vec.py FOLDER`.")
        view = self.live.view(snap.index)
        if not allow_empty and view.item_count(snap.index) == 0:
            raise ServiceError(409, "empty_index", "The index has no images: every one was removed.")
        return snap, view

    def decode(self, data: bytes) -> Image.Image:
        """An upload as an RGB image, or the 4xx that says why not."""
        if not data:
            raise ServiceError(400, "empty_body", "no image received: the upload was empty")
        try:
            with metrics.stage("decode"):
                return imaging.decode_rgb(data, self.cfg.max_image_pixels, self.decode_side())
        except imaging.ImageTooLarge as error:
            raise ServiceError(413, "too_many_pixels", str(error)) from None
        except imaging.UnreadableImage as error:
            raise ServiceError(400, "not_an_image", f"cannot read the upload as an image: {error}") from None

    def decode_side(self) -> int:
        """How small an upload may be decoded: enough for the network and for the preview."""
        snap = self.holder.get()
        return max(THUMB_SIDE, snap.embedder.decode_side if snap is not None else 0)

    def search_image(
        self, image: Image.Image, k: int, filename: str | None = None, offset: int = 0, folders: tuple = ()
    ) -> Answer:
        """Results ``offset`` to ``offset + k`` for an uploaded image, within ``folders`` if given."""
        snap, view = self.current()
        with metrics.stage("embed"):
            vectors = snap.embed_all(tta.variants(image, self.cfg.tta))
        with metrics.stage("search"):
            found = pipeline.search_embedded(
                snap.index, view, image, vectors, k, self.cfg.search_k, offset, folders
            )
        query = {"type": "upload", "filename": filename, "width": image.width, "height": image.height}
        return Answer(snap, view, found.hits, query, found.more, found.truncated)

    def search_id(self, item_id: int, k: int, offset: int = 0, folders: tuple = ()) -> Answer:
        """Neighbours of an indexed image, from its stored vector: no upload, no model run."""
        snap, view = self.current()
        vector, item = self.item(snap, view, item_id)
        raw = self.raw(snap, view, [item.id])
        with metrics.stage("search"):
            found = pipeline.search_id(
                snap.index, view, item.id, vector, raw, k, self.cfg.search_k, offset, folders
            )
        return Answer(snap, view, found.hits, _id_query(item), found.more, found.truncated)

    def search_region(
        self, item_id: int, box: queries.Box, k: int, offset: int = 0, folders: tuple = ()
    ) -> Answer:
        """Neighbours of a region of an indexed image: its file is decoded, cut and embedded."""
        snap, view = self.current()
        _, item = self.item(snap, view, item_id)
        try:
            path, side = self.image_path(item_id), snap.embedder.decode_side
            region = queries.crop(imaging.open_rgb(path, self.cfg.max_image_pixels, side), box)
        except (imaging.UnreadableImage, queries.BadBox) as error:
            raise ServiceError(400, "bad_box", f"cannot search that region: {error}") from None
        vector = snap.embed(region)
        found = pipeline.search_vector(
            snap.index, view, vector, [vector], k, self.cfg.search_k, item_id, False, offset, folders
        )
        query = _id_query(item) | {"box": list(box)}
        return Answer(snap, view, found.hits, query, found.more, found.truncated)

    def search_combined(
        self, images: list, ids: list[int], negatives: list, negative_ids: list[int], k: int,
        offset: int = 0, folders: tuple = (),
    ) -> Answer:  # fmt: skip
        """Several images and ids as one query, pushed away from the negative ones (queries.py)."""
        snap, view = self.current()
        pictures = images + negatives
        full = list(snap.embed_all(pictures)) if pictures else []
        embedded = list(snap.index.to_index_space(np.stack(full))) if full else []
        positive = embedded[: len(images)] + [self.item(snap, view, i)[0] for i in ids]
        negative = embedded[len(images) :] + [self.item(snap, view, i)[0] for i in negative_ids]
        if not positive:
            raise ServiceError(400, "no_image", "give at least one image or id to search with")
        vector = queries.combine(np.stack(positive), np.stack(negative) if negative else None)
        excluded = set(ids) | set(negative_ids)
        raw = full[: len(images)] + self.raw(snap, view, ids)
        found = pipeline.search_vector(
            snap.index, view, vector, raw, k, self.cfg.search_k, excluded, True, offset, folders
        )
        query = {"type": "combined", "images": len(images), "ids": ids, "negative_images": len(negatives),
                 "negative_ids": negative_ids}  # fmt: skip
        return Answer(snap, view, found.hits, query, found.more, found.truncated)

    def item(self, snap: Snapshot, view: live.LiveView, item_id: int) -> tuple[np.ndarray, Catalogued]:
        """An item's vector (in the index's space) and catalogue entry, from the base or the delta."""
        row = snap.index.rows_by_id.get(item_id)
        if row is not None and item_id not in view.hidden:
            return snap.index.stored_vector(row), snap.index.items[row]
        row = view.rows_by_id.get(item_id)
        if row is not None:
            return view.vectors[row], view.additions[row]
        raise ServiceError(404, "unknown_id", f"no image with id {item_id} in the index")

    def raw(self, snap: Snapshot, view: live.LiveView, ids: list[int]) -> list[np.ndarray]:
        """The full embeddings of indexed items (for the match labels), those known."""
        found = []
        for item_id in ids:
            row, added = snap.index.rows_by_id.get(item_id), view.rows_by_id.get(item_id)
            vector = snap.index.raw_vector(row) if row is not None else None
            vector = view.additions[added].vector if vector is None and added is not None else vector
            found += [] if vector is None else [vector]
        return found

    def image_path(self, item_id: int) -> Path:
        """An item's file, absolute: Flask's send_file reads a relative path against the package's
        folder, not the working directory that a relative index or collection folder means."""
        return self._file(item_id)[1].absolute()

    def _file(self, item_id: int) -> tuple[Catalogued, Path]:
        """An item and its file, found through the catalogue (never the request), inside the collection."""
        snap, view = self.current()
        _, item = self.item(snap, view, item_id)
        path = snap.index.collection_root / item.path
        if not path.is_file():
            raise ServiceError(404, "file_missing", f"image {item_id} is indexed but its file is gone")
        if not collection.inside(snap.index.collection_root, path):  # a link made after the build
            raise ServiceError(404, "outside_collection", f"image {item_id} links out of the collection")
        return item, path

    def thumbnail_path(self, item_id: int) -> Path:
        """A JPEG of at most THUMB_SIDE pixels, made once per content and cached by its hash."""
        item, path = self._file(item_id)
        cached = Path(self.cfg.index_dir).absolute() / "thumbs" / f"{item.sha1}.jpg"  # see image_path
        if not cached.is_file():
            try:
                image = imaging.open_rgb(path, self.cfg.max_image_pixels, THUMB_SIDE)
            except imaging.UnreadableImage as error:
                raise ServiceError(404, "file_missing", f"image {item_id} cannot be read: {error}") from None
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            cached.parent.mkdir(parents=True, exist_ok=True)
            durable.atomic_write(cached, lambda handle: image.save(handle, "JPEG", quality=85))
        return cached

    def add(self, data: bytes, image: Image.Image, metadata: dict) -> live.Addition:
        """Embed an image, store it under the collection's uploads/ with a name of ours, and commit
        it to the delta. ``image`` is ``data`` decoded by the caller, who refused bad input."""
        snap, _ = self.current(allow_empty=True)
        vector = snap.embed(image)
        folder = snap.index.collection_root / collection.UPLOADS
        name = uuid.uuid4().hex + imaging.SUFFIX_OF.get(imaging.image_format(data) or "", ".img")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            durable.atomic_write(folder / name, lambda handle: handle.write(data), durable=True)
        except OSError as error:  # e.g. the collection is mounted read-only
            self.logger.error("cannot store an upload: %s", error)
            raise ServiceError(
                507, "cannot_store", "the server cannot store new images (is the collection folder writable?)"
            ) from None
        stat = (folder / name).stat()
        path = f"{collection.UPLOADS}/{name}"
        addition = live.Addition(
            -1, path, hashlib.sha1(data).hexdigest(), stat.st_size, stat.st_mtime_ns,
            snap.index.manifest.model_key, vector, metadata,
        )  # fmt: skip
        item_id = self.live.store.add(addition, floor=snap.index.manifest.next_id)
        self._maybe_compact(snap)
        return dataclasses.replace(addition, id=item_id)

    def remove(self, item_id: int) -> str:
        """Tombstone an item of the base index or of the delta; returns its path."""
        snap, view = self.current(allow_empty=True)
        _, item = self.item(snap, view, item_id)  # 404 for an unknown or already deleted id
        if not self.live.store.delete(item_id, item.path):  # a concurrent request deleted it first
            raise ServiceError(404, "unknown_id", f"no image with id {item_id} in the index")
        self._maybe_compact(snap)
        return item.path

    def _maybe_compact(self, snap: Snapshot) -> None:
        if self.compactor is not None:
            self.compactor.maybe_start(snap, self.live.view(snap.index))

    def duplicates(self, threshold: float | None = None) -> tuple[Snapshot, float, list[grouping.Group]]:
        """Groups of copies in the built index, minus what was deleted since: from the pairs the build
        verified, or (older versions) computed once per version and threshold, under their own lock."""
        snap, view = self.current()
        key = (snap.index.version.name, threshold)
        with self._duplicates_lock:
            if key not in self._duplicates:
                try:
                    self._duplicates = {key: finding.find_duplicates(snap.index, threshold)}
                except ValueError as error:
                    raise ServiceError(409, "not_calibrated", str(error)) from None
        limit, groups = self._duplicates[key]
        kept = [
            dataclasses.replace(group, members=[m for m in group.members if m.id not in view.hidden])
            for group in groups
        ]
        return snap, limit, [group for group in kept if len(group.members) > 1]

    def map_points(self) -> tuple[Snapshot, list[dict]]:
        """The built index on a t-SNE map; live additions join it at the next compaction."""
        snap, _ = self.current()
        with self._map_lock:  # the first visit computes the t-SNE once per index version
            try:
                return snap, plots.map_points(snap.index)
            except ValueError as error:
                raise ServiceError(409, "too_few_images", str(error)) from None

    def health(self) -> tuple[dict, int]:
        snap = self.holder.get()
        if snap is None:
            return {"status": "unavailable", "reason": self.holder.load_error}, 503
        body = {"status": "ok", "version": snap.index.version.name, "items": len(snap.index.items)}
        if self.compactor is not None and self.compactor.failing:  # it serves, but its delta grows
            body["compaction"] = f"failing ({self.compactor.failures} in a row)"
        return body, 200

    def stats(self) -> dict:
        snap = self.holder.get()
        index = None
        if snap is not None:
            index = snap.index.manifest.to_dict() | {"version": snap.index.version.name}
            index["segments"] = snap.index.segments()
        return {
            "worker_pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "requests": dict(self.counts),
            "index": index,
            "query_precision": None if snap is None else snap.embedder.precision,  # may be below the index's
            "load_error": self.holder.load_error,
        }
