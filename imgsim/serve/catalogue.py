"""What a request answers from: one index version and the live delta over it, every item by id
(base or delta), and the files behind them, found through the catalogue, never the request."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

import numpy as np

from imgsim import config, durable
from imgsim.images import imaging
from imgsim.index import store
from imgsim.live import live
from imgsim.serve.holder import IndexHolder, Snapshot
from imgsim.serve.refusals import ServiceError

THUMB_SIDE = 256
UNREADABLE_FOR_S = 60.0  # a file that could not be read is not read again for this long
UNREADABLE_KEPT = 10_000  # (in each worker, the least recent forgotten first)
Catalogued = store.Item | live.Addition  # an item of the base index or of the delta


class Catalogue:
    """The open index version (IndexHolder) and the live layer over it, item by item."""

    def __init__(self, holder: IndexHolder, live_layer: live.LiveLayer, cfg: config.Config):
        self.holder, self.live, self.cfg = holder, live_layer, cfg
        # contents whose file could not be made a thumbnail, when and why: not read again at once
        self._unreadable: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _remember_unreadable(self, sha1: str, message: str) -> None:
        self._unreadable[sha1] = (time.monotonic(), message)
        self._unreadable.move_to_end(sha1)
        while len(self._unreadable) > UNREADABLE_KEPT:
            self._unreadable.popitem(last=False)

    def current(self, allow_empty: bool = False) -> tuple[Snapshot, live.LiveView]:
        """The index version and live delta that this whole request answers from."""
        snap = self.holder.get()
        if snap is None and self.holder.refused:
            raise ServiceError(
                "no_index", "The index failed its checks and is not served: rebuild it (/healthz says why)."
            )
        if snap is None:
            raise ServiceError("no_index", "The index is not built yet: run `python img2vec.py FOLDER`.")
        view = self.live.view(snap.index)
        if not allow_empty and view.item_count(snap.index) == 0:
            raise ServiceError("empty_index", "The index has no images: every one was removed.")
        return snap, view

    def item(self, snap: Snapshot, view: live.LiveView, item_id: int) -> tuple[np.ndarray, Catalogued]:
        """An item's vector (in the index's space) and catalogue entry, from the base or the delta."""
        row = snap.index.rows_by_id.get(item_id)
        if row is not None and item_id not in view.hidden:
            return snap.index.stored_vector(row), snap.index.items[row]
        row = view.rows_by_id.get(item_id)
        if row is not None:
            return view.vectors[row], view.additions[row]
        raise ServiceError("unknown_id", f"no image with id {item_id} in the index")

    def raw(self, snap: Snapshot, view: live.LiveView, ids: list[int]) -> list[np.ndarray]:
        """The full embeddings of indexed items (for the match labels), those known."""
        found = []
        for item_id in ids:
            row, added = snap.index.rows_by_id.get(item_id), view.rows_by_id.get(item_id)
            vector = snap.index.raw_vector(row) if row is not None else None
            vector = view.additions[added].vector if vector is None and added is not None else vector
            found += [] if vector is None else [vector]
        return found

    def open_file(self, item_id: int) -> tuple[Catalogued, BinaryIO]:
        """An item and its file, opened (see ``opened``)."""
        snap, view = self.current()
        _, item = self.item(snap, view, item_id)
        return item, self.opened(snap, item)

    def opened(self, snap: Snapshot, item: Catalogued) -> BinaryIO:
        """An item's file, opened: the very file read is checked to lie inside the collection (a
        file swapped for a link after a check once sent any file the service could read)."""
        root = snap.index.collection_root.absolute()  # a relative collection means the working folder
        try:
            return durable.open_inside(root, root / item.path)
        except durable.OutsideRoot:  # a link made after the build
            raise ServiceError("outside_collection", f"image {item.id} links out of the collection") from None
        except OSError:
            raise ServiceError("file_missing", f"image {item.id} is indexed but its file is gone") from None

    def read_image(self, snap: Snapshot, item: Catalogued, min_side: int) -> imaging.Image.Image:
        """An item's picture, decoded from its checked file (shrunk to no less than ``min_side``)."""
        with self.opened(snap, item) as handle:
            data = imaging.read_open(handle, self.cfg.max_file_bytes)
        return imaging.decode_rgb(data, self.cfg.max_image_pixels, min_side)

    def thumbnail_path(self, item_id: int) -> Path:
        """A JPEG of at most THUMB_SIDE pixels, made once per content and cached by its hash."""
        snap, view = self.current()
        _, item = self.item(snap, view, item_id)
        cached = store.thumbnail_file(self.cfg.index_dir, item.sha1)
        if not cached.is_file():
            failed = self._unreadable.get(item.sha1)
            if failed is not None and time.monotonic() - failed[0] < UNREADABLE_FOR_S:
                raise ServiceError("file_missing", failed[1])
            try:
                image = self.read_image(snap, item, THUMB_SIDE)
            except imaging.UnreadableImage as error:  # a corrupt file, read again only in a while
                message = f"image {item_id} cannot be read: {error}"
                self._remember_unreadable(item.sha1, message)
                raise ServiceError("file_missing", message) from None
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            cached.parent.mkdir(parents=True, exist_ok=True)
            durable.atomic_write(cached, lambda handle: image.save(handle, "JPEG", quality=85))
        return cached
