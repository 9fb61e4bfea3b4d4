"""Searching: an upload decoded, then searched by picture, by an indexed id, by a region of one,
or by several pictures and ids at once, each through the one query path (query/pipeline.py) over
what the catalogue gives the request."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from imgsim import config
from imgsim.images import imaging
from imgsim.index import depth, queries
from imgsim.models import tta
from imgsim.query import pipeline
from imgsim.serve import metrics
from imgsim.serve.catalogue import THUMB_SIDE, Catalogue, Catalogued
from imgsim.serve.holder import Answer
from imgsim.serve.refusals import ServiceError


def _id_query(item: Catalogued) -> dict:
    """How an answer describes a search by an indexed image."""
    return {"type": "id", "id": item.id, "path": item.path, "url": f"/images/{item.id}"}


class Searching:
    """Every kind of search a worker answers, over its catalogue."""

    def __init__(self, catalogue: Catalogue, cfg: config.Config):
        self.catalogue, self.cfg = catalogue, cfg
        self.depth = depth.from_search_k(cfg.search_k)

    def decode(self, data: bytes) -> Image.Image:
        """An upload as an RGB image, or the 4xx that says why not."""
        if not data:
            raise ServiceError("empty_body", "no image received: the upload was empty")
        try:
            with metrics.stage("decode"):
                return imaging.decode_rgb(data, self.cfg.max_image_pixels, self.decode_side())
        except imaging.ImageTooLarge as error:
            raise ServiceError("too_many_pixels", str(error)) from None
        except imaging.UnreadableImage as error:
            raise ServiceError("not_an_image", f"cannot read the upload as an image: {error}") from None

    def decode_side(self) -> int:
        """How small an upload may be decoded: enough for the network and for the preview."""
        snap = self.catalogue.holder.get()
        return max(THUMB_SIDE, snap.embedder.decode_side if snap is not None else 0)

    def search_image(
        self, image: Image.Image, k: int, filename: str | None = None, offset: int = 0, folders: tuple = ()
    ) -> Answer:
        """Results ``offset`` to ``offset + k`` for an uploaded image, within ``folders`` if given."""
        snap, view = self.catalogue.current()
        with metrics.stage("embed"):
            vectors = snap.embed_all(tta.variants(image, self.cfg.tta))
        with metrics.stage("search"):
            found = pipeline.search_embedded(snap.index, view, image, vectors, k, self.depth, offset, folders)
        query = {"type": "upload", "filename": filename, "width": image.width, "height": image.height}
        return Answer(snap, view, found.hits, query, found.more, found.truncated)

    def search_id(self, item_id: int, k: int, offset: int = 0, folders: tuple = ()) -> Answer:
        """Neighbours of an indexed image, from its stored vector: no upload, no model run."""
        snap, view = self.catalogue.current()
        vector, item = self.catalogue.item(snap, view, item_id)
        raw = self.catalogue.raw(snap, view, [item.id])
        with metrics.stage("search"):
            found = pipeline.search_id(snap.index, view, item.id, vector, raw, k, self.depth, offset, folders)
        return Answer(snap, view, found.hits, _id_query(item), found.more, found.truncated)

    def search_region(
        self, item_id: int, box: queries.Box, k: int, offset: int = 0, folders: tuple = ()
    ) -> Answer:
        """Neighbours of a region of an indexed image: its file is decoded, cut and embedded."""
        snap, view = self.catalogue.current()
        _, item = self.catalogue.item(snap, view, item_id)
        try:
            image = self.catalogue.read_image(snap, item, snap.embedder.decode_side)
            region = queries.crop(image, box)
        except (imaging.UnreadableImage, queries.BadBox) as error:
            raise ServiceError("bad_box", f"cannot search that region: {error}") from None
        vector = snap.embed(region)
        found = pipeline.search_vector(
            snap.index, view, vector, [vector], k, self.depth, item_id, False, offset, folders
        )
        query = _id_query(item) | {"box": list(box)}
        return Answer(snap, view, found.hits, query, found.more, found.truncated)

    def search_combined(
        self,
        images: Iterable[Image.Image],
        ids: list[int],
        negatives: Iterable[Image.Image],
        negative_ids: list[int],
        k: int,
        offset: int = 0,
        folders: tuple = (),
    ) -> Answer:
        """Several images and ids as one query, pushed away from the negative ones (queries.py).
        The images are taken one at a time (a lazy decoder may give them) and only their vectors
        kept: twenty 3-megapixel uploads once stayed decoded together, 192 MB a request."""
        snap, view = self.catalogue.current()
        wanted = [snap.embed_all([image])[0] for image in images]
        unwanted = [snap.embed_all([image])[0] for image in negatives]
        full = wanted + unwanted
        embedded = list(snap.index.to_index_space(np.stack(full))) if full else []
        positive = embedded[: len(wanted)] + [self.catalogue.item(snap, view, i)[0] for i in ids]
        negative = embedded[len(wanted) :] + [self.catalogue.item(snap, view, i)[0] for i in negative_ids]
        if not positive:
            raise ServiceError("no_image", "give at least one image or id to search with")
        vector = queries.combine(np.stack(positive), np.stack(negative) if negative else None)
        excluded = set(ids) | set(negative_ids)
        raw = wanted + self.catalogue.raw(snap, view, ids)
        found = pipeline.search_vector(
            snap.index, view, vector, raw, k, self.depth, excluded, True, offset, folders
        )
        query = {
            "type": "combined",
            "images": len(wanted),
            "ids": ids,
            "negative_images": len(unwanted),
            "negative_ids": negative_ids,
        }
        return Answer(snap, view, found.hits, query, found.more, found.truncated)
