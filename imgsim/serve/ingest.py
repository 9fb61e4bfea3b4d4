"""Ingest: images added and removed while the service runs, committed to the live store before the
answer, and the background compaction that writes the delta into the index once it is large."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid

from PIL import Image

from imgsim import durable
from imgsim.images import imaging
from imgsim.indexing import collection
from imgsim.live import live
from imgsim.serve.catalogue import Catalogue
from imgsim.serve.compaction import Compactor
from imgsim.serve.holder import Snapshot
from imgsim.serve.refusals import ServiceError


class Ingest:
    """Additions and deletions through the live store; ``compactor`` (None: never compact here)."""

    def __init__(
        self,
        catalogue: Catalogue,
        live_store: live.LiveStore,
        compactor: Compactor | None,
        logger: logging.Logger,
    ):
        self.catalogue = catalogue
        self.live_store = live_store
        self.compactor = compactor
        self.logger = logger

    def resume(self) -> None:
        """Resume a compaction that a crash or restart interrupted (the delta is over the threshold)."""
        snap = self.catalogue.holder.get()
        if snap is not None:
            self.maybe_compact(snap)

    def add(self, data: bytes, image: Image.Image, metadata: dict) -> live.Addition:
        """Embed an image, store it under the collection's uploads/ with a name of ours, and commit
        it to the delta. ``image`` is ``data`` decoded by the caller, who refused bad input."""
        snap, _ = self.catalogue.current(allow_empty=True)
        vector = snap.embed(image)
        folder = snap.index.collection_root / collection.UPLOADS
        name = uuid.uuid4().hex + imaging.SUFFIX_OF.get(imaging.image_format(data) or "", ".img")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            durable.atomic_write(folder / name, lambda handle: handle.write(data), durable=True)
        except OSError as error:  # e.g. the collection is mounted read-only
            self.logger.error("cannot store an upload: %s", error)
            raise ServiceError(
                "cannot_store", "the server cannot store new images (is the collection folder writable?)"
            ) from None
        return self._commit(
            snap, f"{collection.UPLOADS}/{name}", hashlib.sha1(data).hexdigest(), vector, metadata
        )

    def add_file(self, path: str) -> live.Addition:
        """Embed a file already in the collection (one an undone decision brought back) and commit it."""
        snap, _ = self.catalogue.current(allow_empty=True)
        data = imaging.read_file(snap.index.collection_root / path, self.catalogue.cfg.max_file_bytes)
        image = imaging.decode_rgb(data, self.catalogue.cfg.max_image_pixels, snap.embedder.decode_side)
        return self._commit(snap, path, hashlib.sha1(data).hexdigest(), snap.embed(image), {})

    def _commit(self, snap: Snapshot, path: str, sha1: str, vector, metadata: dict) -> live.Addition:
        stat = (snap.index.collection_root / path).stat()
        model_key = str(snap.index.manifest.model_key)
        addition = live.Addition(-1, path, sha1, stat.st_size, stat.st_mtime_ns, model_key, vector, metadata)
        item_id = self.live_store.add(addition, floor=snap.index.manifest.next_id)
        self.maybe_compact(snap)
        return dataclasses.replace(addition, id=item_id)

    def remove(self, item_id: int) -> str:
        """Tombstone an item of the base index or of the delta; returns its path."""
        snap, view = self.catalogue.current(allow_empty=True)
        _, item = self.catalogue.item(snap, view, item_id)  # unknown_id: unknown or already deleted
        if not self.live_store.delete(item_id, item.path):  # a concurrent request deleted it first
            raise ServiceError("unknown_id", f"no image with id {item_id} in the index")
        self.maybe_compact(snap)
        return item.path

    def maybe_compact(self, snap: Snapshot) -> None:
        if self.compactor is not None:
            self.compactor.maybe_start(snap, self.catalogue.live.view(snap.index))
