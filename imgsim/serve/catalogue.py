"""What a request answers from: one index version and the live delta over it, every item by id
(base or delta), and the files behind them, found through the catalogue, never the request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgsim import config, durable
from imgsim.images import imaging
from imgsim.index import store
from imgsim.indexing import collection
from imgsim.live import live
from imgsim.serve.holder import IndexHolder, Snapshot
from imgsim.serve.refusals import ServiceError

THUMB_SIDE = 256
Catalogued = store.Item | live.Addition  # an item of the base index or of the delta


class Catalogue:
    """The open index version (IndexHolder) and the live layer over it, item by item."""

    def __init__(self, holder: IndexHolder, live_layer: live.LiveLayer, cfg: config.Config):
        self.holder, self.live, self.cfg = holder, live_layer, cfg

    def current(self, allow_empty: bool = False) -> tuple[Snapshot, live.LiveView]:
        """The index version and live delta that this whole request answers from."""
        snap = self.holder.get()
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

    def image_path(self, item_id: int) -> Path:
        """An item's file, absolute: Flask's send_file reads a relative path against the package's
        folder, not the working directory that a relative index or collection folder means."""
        return self.file(item_id)[1].absolute()

    def file(self, item_id: int) -> tuple[Catalogued, Path]:
        """An item and its file, inside the collection."""
        snap, view = self.current()
        _, item = self.item(snap, view, item_id)
        path = snap.index.collection_root / item.path
        if not path.is_file():
            raise ServiceError("file_missing", f"image {item_id} is indexed but its file is gone")
        if not collection.inside(snap.index.collection_root, path):  # a link made after the build
            raise ServiceError("outside_collection", f"image {item_id} links out of the collection")
        return item, path

    def thumbnail_path(self, item_id: int) -> Path:
        """A JPEG of at most THUMB_SIDE pixels, made once per content and cached by its hash."""
        item, path = self.file(item_id)
        cached = Path(self.cfg.index_dir).absolute() / "thumbs" / f"{item.sha1}.jpg"  # see image_path
        if not cached.is_file():
            try:
                image = imaging.open_rgb(path, self.cfg.max_image_pixels, THUMB_SIDE)
            except imaging.UnreadableImage as error:
                raise ServiceError("file_missing", f"image {item_id} cannot be read: {error}") from None
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            cached.parent.mkdir(parents=True, exist_ok=True)
            durable.atomic_write(cached, lambda handle: image.save(handle, "JPEG", quality=85))
        return cached
