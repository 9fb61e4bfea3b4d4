"""One query path: what the service, ``imgsim search``, ``evaluate.py`` and the benches all call.

A search by a picture embeds its variants (tta.py) and keeps the orientation whose nearest is
nearest, ranks the built index's segments and the live delta together (live.search_page: the
same tombstones and additions the service sees), adds the items whose perceptual hash is near
the query's as candidates, puts the verified copies first (verification.py), and gives each
result its likeness and match label. The callers only embed (each with its own model handle)
and format the answer, so the command line and the service cannot drift apart again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgsim.images import hashing
from imgsim.index import matching
from imgsim.index.depth import TUNED, Depth
from imgsim.live import live
from imgsim.models import tta
from imgsim.search import likeness, verification
from imgsim.search import shortlist as shortlist_order
from imgsim.search.annoy_index import Hit, SearchIndex

Embed = Callable[[list[Image.Image]], np.ndarray]  # pictures -> full embeddings, one row each


@dataclass
class Found:
    """One page of labelled results and what a caller may report about them."""

    hits: list[Hit]
    more: bool = False  # results beyond these may exist (ask with offset = offset + k)
    truncated: bool = False  # the folder filter may have left out results beyond those examined
    verify_seconds: float = 0.0  # of the search, spent checking candidates for being the same picture


def search_image(
    index: SearchIndex,
    view: live.LiveView,
    image: Image.Image,
    embed: Embed,
    k: int,
    depth: Depth = TUNED,
    tta_mode: str = "none",
    offset: int = 0,
    folders: Sequence[str] = (),
) -> Found:
    """Results ``offset`` to ``offset + k`` for a picture, within ``folders`` if given."""
    vectors = embed(tta.variants(image, tta_mode))
    return search_embedded(index, view, image, vectors, k, depth, offset, folders)


def search_embedded(
    index: SearchIndex,
    view: live.LiveView,
    image: Image.Image,
    vectors: np.ndarray,
    k: int,
    depth: Depth = TUNED,
    offset: int = 0,
    folders: Sequence[str] = (),
    verify: bool = True,
) -> Found:
    """search_image with the variants already embedded (``vectors``: a caller that embeds many
    pictures in one batch); ``verify`` False ranks by the embedding alone (a measurement's
    baseline)."""
    vector = _oriented(index, view, vectors, depth, folders)
    in_space = index.to_index_space(vector[None, :])[0]
    shortlisted = verify and offset < verification.RERANK  # the page lies in the shortlist

    def fetch(wanted: int, start: int) -> live.Page:
        return live.search_page(
            index, view, in_space, wanted, depth, reduced=True, offset=start, folders=folders
        )

    page, hits, more = _page(index, in_space, fetch, k, offset, shortlisted)
    began = time.perf_counter()
    if shortlisted and not offset:  # the first page: the original first, hash-near items checked too
        hashes = hashing.of_query(image)
        extra = visible(verification.by_hash(index, hashes.turned, in_space), view, folders)
        hits = verification.verified_first(index, image, hits, k, 0, extra, hashes.mirrored)
    checked = time.perf_counter() - began if verify else 0.0
    return Found(labelled(index, view, [vector], hits[:k]), more, page.truncated, checked)


def search_id(
    index: SearchIndex,
    view: live.LiveView,
    item_id: int,
    vector: np.ndarray,
    raw: list[np.ndarray],
    k: int,
    depth: Depth = TUNED,
    offset: int = 0,
    folders: Sequence[str] = (),
) -> Found:
    """Neighbours of an indexed item from its stored ``vector`` (in the index's space), its
    copies first; ``raw``: its full embedding where known (for the labels)."""

    def fetch(wanted: int, start: int) -> live.Page:
        return live.search_page(
            index, view, vector, wanted, depth, item_id, True, offset=start, folders=folders
        )

    page, hits, more = _page(index, vector, fetch, k, offset, offset < verification.RERANK)
    if not offset:  # the first page: its copies first
        extra = visible(verification.by_hash_of(index, item_id), view, folders)
        hits = verification.verified_first_by_id(index, item_id, hits, k, 0, extra)
    return Found(labelled(index, view, raw, hits[:k]), more, page.truncated)


def _page(
    index: SearchIndex,
    in_space: np.ndarray,
    fetch: Callable[[int, int], live.Page],
    k: int,
    offset: int,
    shortlisted: bool,
) -> tuple[live.Page, list[Hit], bool]:
    """The page's results (``fetch(wanted, offset)`` searches), whether more may follow, and the
    page as fetched. A page within the shortlist (``shortlisted``) is cut from the RERANK nearest in
    the shortlist's order (search/shortlist.py), every such page from the same order, and the first
    page holds them all for verification; a later page keeps the embedding's order."""
    if not shortlisted:
        page = fetch(k, offset)
        return page, page.hits[:k], page.more or len(page.hits) > k
    page = fetch(max(offset + k, verification.RERANK), 0)
    ordered = shortlist_order.reordered(index, in_space, page.hits, verification.RERANK)
    hits = ordered if not offset else ordered[offset : offset + k]
    return page, hits, page.more or len(page.hits) > offset + k


def search_vector(
    index: SearchIndex,
    view: live.LiveView,
    vector: np.ndarray,
    queries: list[np.ndarray],
    k: int,
    depth: Depth = TUNED,
    exclude: Collection[int] | int | None = None,
    reduced: bool = False,
    offset: int = 0,
    folders: Sequence[str] = (),
) -> Found:
    """The nearest to a made vector (a region's, several pictures' combined; ``reduced``: already
    in the index's space), labelled by its likeness to ``queries``; nothing is verified, as
    no single picture was given."""
    page = live.search_page(index, view, vector, k, depth, exclude, reduced, offset, folders)
    return Found(labelled(index, view, queries, page.hits), page.more, page.truncated)


def labelled(
    index: SearchIndex, view: live.LiveView, queries: list[np.ndarray], hits: list[Hit]
) -> list[Hit]:
    """Each hit with its likeness to the nearest of ``queries`` (full embeddings; live additions'
    own from the delta) and its match label on this index version (index/matching.py)."""
    others = {addition.id: addition.vector for addition in view.additions}
    thresholds = index.manifest.thresholds
    return [
        dataclasses.replace(
            hit,
            match=matching.word(hit.likeness, verification.is_copy(hit), thresholds, hit.scene is not None),
        )
        for hit in likeness.with_likeness(index, queries, hits, others)
    ]


def visible(hits: list[Hit], view: live.LiveView, folders: Sequence[str]) -> list[Hit]:
    """The hits a search may show: not deleted live, within ``folders`` if given."""
    hidden = set(view.hidden)
    return [hit for hit in hits if hit.id not in hidden and live.under(hit.path, folders)]


def _oriented(
    index: SearchIndex, view: live.LiveView, vectors: np.ndarray, depth: Depth, folders: Sequence[str]
) -> np.ndarray:
    """The variant to search with: the only one, or the one whose nearest match is nearest."""
    if len(vectors) == 1:
        return vectors[0]
    firsts = [live.search_page(index, view, v, 1, depth, folders=folders).hits for v in vectors]
    chosen = tta.best_orientation(firsts)
    return vectors[next(n for n, first in enumerate(firsts) if first is chosen)]
