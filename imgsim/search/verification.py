"""Finding the original: a search's nearest candidates checked for being the same picture.

The embedding ranks by likeness; an edited copy's original can sit below photos that merely look
alike (a 70 % crop found its original first 0.83 of the time on flowers5). The RERANK nearest are
verified against the query with the version's stored features (index/keypoints.py), and the
verified ones come first, most agreeing matches first, each with where it lies in the query and
the query in it (docs/benchmarks.md section 12). Beyond the ALWAYS nearest and the hash's
candidates, a candidate is verified only if it passes a first look (images/first_look.py): a search
whose picture the collection lacks no longer pays for 40 full checks (section 15).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim.images import first_look, geometry, hashing, imaging, same_picture, same_scene
from imgsim.index import keypoints, store
from imgsim.index import vectors as vector_math
from imgsim.search.annoy_index import Hit, SearchIndex

SAME_BYTES = 1e-4  # a distance this small is the query's own file, whatever verification says
STRONG = 40  # agreeing matches that settle it (look-alikes that got past the checks had 12-13)
RERANK = 40  # candidates verified per search: on flowers5 the original of a 70 % crop is among the
# 20 nearest 0.97 of the time, the 50 nearest 0.99; 30 brought it to rank 1 for 0.965, 40 for 0.97
QUERY_KEYPOINTS = 300  # the query's strongest: matching costs in proportion (a search whose picture
# the collection lacks checks every candidate: 46 ms at 30 x 500, 43 at 40 x 300; section 14)
HASH_NEAR = 8  # bits: items whose perceptual hash lies this near the query's (at any quarter turn)
HASH_LIMIT = 5  # are verified too, at most this many: a grayscale copy's original (0-2 bits), which
# the embedding ranks among the 20 nearest 0.46 of the time; the nearest different photo lay at
# 12 bits or more for 97 % of queries on flowers5
MIRRORED = 5  # where nothing verified, the nearest this many are checked for a mirrored copy, if
# one could be there (_mirror_could_be): finding the mirror image's keypoints and looking at 5 was
# 4-5 ms of a search whose picture the collection lacks (Holidays photos' 30.7 -> 25.9 ms p50)
FIRST_LOOK = True  # False: every candidate verified in full (a benchmark's column before it)
ALWAYS = 5  # the nearest candidates verified without a first look (first_look.py), and the hash's:
# a soft original (a 70 % crop's, 156 keypoints) may fail the first look, and lay among the 5
# nearest in every such case on flowers5 (a JPEG q10 copy's original 40th or beyond: by its hash)
SAME_SCENE = True  # False: no result is checked for the query's scene (a benchmark's column before it)
SCENES = 10  # the nearest results that are not copies checked for showing the query's scene
# (images/same_scene.py), and moved after the copies: a Holidays query's 10 nearest by exact
# search held 98 of its scene's photos that verified; about 0.3 ms a look, 1.2 ms a full check


@functools.lru_cache(maxsize=4)  # a worker searches one version, and for a while the one before
def stored_features(version: Path) -> keypoints.VersionKeypoints | None:
    return keypoints.load(version)


def is_copy(hit: Hit) -> bool:
    """Whether a result is the query's picture: verified, or at no distance at all from it (the
    query's own file: a picture too plain for local features is still its own copy)."""
    return hit.verified is not None or hit.distance <= SAME_BYTES


def by_hash(index: SearchIndex, turned: np.ndarray, vector: np.ndarray) -> list[Hit]:
    """The items whose perceptual hash is near the query's at some quarter turn (``turned``:
    hashing.turned's, or of_query's; ``vector``: its embedding in the index's space, for their
    distances), nearest hash first: candidates the embedding may miss."""
    stored = stored_features(index.version)
    if stored is None:
        return []
    return _hits(index, stored.nearest_by_hash(turned, HASH_NEAR, HASH_LIMIT), vector)


def by_hash_of(index: SearchIndex, item_id: int) -> list[Hit]:
    """The same for an indexed image, from its stored hash."""
    stored = stored_features(index.version)
    row = index.rows_by_id.get(item_id)
    if stored is None or row is None or row >= len(stored) or not stored.hashes[row].any():
        return []
    near = stored.nearest_by_hash(stored.hashes[row], HASH_NEAR, HASH_LIMIT + 1)
    near = [r for r in near if r != row]
    return _hits(index, near[:HASH_LIMIT], index.stored_vector(row))


def _hits(index: SearchIndex, rows: list[int], vector: np.ndarray) -> list[Hit]:
    if not rows:
        return []
    matrix = np.stack([index.stored_vector(r) for r in rows])
    return index.hits(rows, vector_math.distances(matrix, vector, index.metric))


def verified_first(
    index: SearchIndex,
    image: Image.Image,
    hits: list[Hit],
    k: int,
    offset: int = 0,
    extra: Sequence[Hit] = (),
    mirror_hash: np.ndarray | None = None,
) -> list[Hit]:
    """The first ``k`` of ``hits`` with those that show the query's very picture first (on the
    first page only: a later page keeps the embedding's order, ``offset`` into it); ``extra``:
    more candidates (by_hash), shown only if they verify; ``mirror_hash``: the hash of the query's
    mirror image where already found (hashing.of_query), else it is found if needed."""
    stored = stored_features(index.version)
    if stored is None or not hits or offset:
        return hits[:k]
    query = geometry.features(image, count=QUERY_KEYPOINTS, hashed=False)  # by_hash hashes the query
    return _promoted(index, stored, query, hits, k, extra, image, mirror_hash=mirror_hash)


def verified_first_by_id(
    index: SearchIndex, item_id: int, hits: list[Hit], k: int, offset: int = 0, extra: Sequence[Hit] = ()
) -> list[Hit]:
    """The same for a search by an indexed image, with its stored features (none for a live
    addition: then the embedding's order stands)."""
    stored = stored_features(index.version)
    row = index.rows_by_id.get(item_id)
    if stored is None or row is None or row >= len(stored) or not hits or offset:
        return hits[:k]
    query = stored.get(row)
    if query is None:
        return hits[:k]
    return _promoted(index, stored, query, hits, k, extra, picture=lambda: _picture(index, index.items[row]))


def _promoted(
    index: SearchIndex,
    stored: keypoints.VersionKeypoints,
    query: geometry.Features,
    hits: list[Hit],
    k: int,
    extra: Sequence[Hit] = (),
    image: Image.Image | None = None,
    picture: Callable[[], Image.Image | None] | None = None,
    mirror_hash: np.ndarray | None = None,
) -> list[Hit]:
    """``hits`` (and ``extra``) with those that verify against ``query`` first; ``image``: the
    query's picture (an upload's), else ``picture()`` reads it (an indexed item's)."""
    by_distance = sorted(hits[:RERANK], key=lambda hit: hit.distance)  # hits come in the shortlist's order
    listed = {hit.id for hit in by_distance}
    hashed = [hit for hit in extra if hit.id not in listed]  # proposed twice over: verified in full
    candidates = by_distance[:ALWAYS] + hashed + by_distance[ALWAYS:]
    query_picture = _once(image, picture)
    found, sampled = [], first_look.sample(query)
    for rank, hit in enumerate(candidates):  # one at a time: OpenCV's matcher already uses every core
        theirs = _stored(index, stored, hit)  # live additions have none
        match = _verified(query, sampled, theirs, look_first=rank >= ALWAYS + len(hashed))
        if match is not None and not _in_the_picture(index, query_picture, match, hit):
            continue  # matched only on what surrounds the pictures (an app's window, a watermark)
        if match is not None:
            found.append((match, hit))
            if match.inliers >= STRONG:
                break  # the query's picture beyond doubt: the rest need not be checked
    if not found and image is not None and _mirror_could_be(index, stored, image, by_distance, mirror_hash):
        # a mirrored copy, among the very nearest: the embedding hardly tells it from the picture
        mirrored = geometry.mirrored_features(image, QUERY_KEYPOINTS)
        mirrored_sample = first_look.sample(mirrored)
        for hit in by_distance[:MIRRORED]:
            theirs = _stored(index, stored, hit)
            match = _verified(mirrored, mirrored_sample, theirs, look_first=True, mirrored=True)
            if match is not None and _in_the_picture(index, query_picture, match, hit):
                found.append((match, hit))
                break
    if not found:
        return _scenes_next(index, stored, query, sampled, hits[:k])
    ranked = sorted(found, key=lambda pair: -pair[0].inliers)
    verified = [_as_verified(hit, match) for match, hit in ranked]
    taken, nearest = {hit.id for _, hit in found}, min(hit.distance for _, hit in found)
    # what could not be checked (a live addition, a file without features) or is the query's own
    # bytes keeps its place before a verified result further away: verification only promotes
    others = [hit for hit in hits if hit.id not in taken]  # extra candidates that did not verify: gone
    ahead = [
        hit
        for hit in others
        if hit.distance <= SAME_BYTES or (hit.distance < nearest and not _checkable(index, stored, hit))
    ]
    shown = (ahead + verified + [hit for hit in others if hit not in ahead])[:k]
    return _scenes_next(index, stored, query, sampled, shown)


def _mirror_could_be(
    index: SearchIndex,
    stored: keypoints.VersionKeypoints,
    image: Image.Image,
    by_distance: list[Hit],
    mirror_hash: np.ndarray | None = None,
) -> bool:
    """Whether a mirrored copy of ``image`` could be among the MIRRORED nearest: the nearest lies
    within the collection's duplicate line, or the mirror image's hash lies within HASH_NEAR bits
    of one of theirs at a quarter turn (a copy flipped upside down is a mirrored copy turned half
    way). On flowers5 (200 photos each) mirrored and upside-down copies lay within 2 bits of their
    originals, while the 5 nearest of 150 Holidays photos lay 18 bits or more from their mirror
    images and of 100 held-out flowers 12 or more (1 within 12); mirrored copies' distances were
    within the line for 0.986 of 2,109 photos (the rest by their hashes)."""
    thresholds = index.manifest.thresholds
    if not by_distance or thresholds is None or by_distance[0].distance <= thresholds.duplicate:
        return bool(by_distance)
    mirror = hashing.mirrored(image) if mirror_hash is None else mirror_hash
    rows = [_stored_row(index, stored, hit) for hit in by_distance[:MIRRORED]]
    hashes = [stored.hashes[row] for row in rows if row is not None]
    return any(h.any() and hashing.distances(h, mirror).min() <= HASH_NEAR for h in hashes)


def _as_verified(hit: Hit, match: geometry.Match) -> Hit:
    """The hit with its verified match: a copy's, or the same scene's where the match is of two
    shots framed apart (same_picture.is_shot), as duplicate groups tell them."""
    if same_picture.is_shot(match):
        return dataclasses.replace(hit, scene=match)
    return dataclasses.replace(hit, verified=match)


def _scenes_next(
    index: SearchIndex,
    stored: keypoints.VersionKeypoints,
    query: geometry.Features,
    sampled: geometry.Features,
    shown: list[Hit],
) -> list[Hit]:
    """``shown`` with the SCENES nearest that are not copies checked for showing the query's scene
    (``sampled``: the query's first-look sample), those that do moved after the copies, most
    agreeing matches first."""
    if not SAME_SCENE:
        return shown
    copies = max((n + 1 for n, hit in enumerate(shown) if is_copy(hit)), default=0)
    scenes = [hit for hit in shown if hit.scene is not None]  # shots that verified as copies do
    others: list[Hit] = []
    for n, hit in enumerate(shown[copies:]):
        if hit.scene is not None:
            continue
        theirs = _stored(index, stored, hit) if n < SCENES else None
        match = None
        if theirs is not None and same_scene.could_be(sampled, theirs):
            match = same_scene.match(query, theirs)
        if match is None:
            others.append(hit)
        else:
            scenes.append(dataclasses.replace(hit, scene=match))
    scenes.sort(key=lambda hit: -hit.scene.inliers if hit.scene is not None else 0)
    return [hit for hit in shown[:copies] if hit.scene is None] + scenes + others


def _verified(
    query: geometry.Features,
    sampled: geometry.Features,
    theirs: geometry.Features | None,
    look_first: bool,
    mirrored: bool = False,
) -> geometry.Match | None:
    """The candidate's match with the query (``mirrored``: the query's features are its mirror
    image's), verified only where it passes the first look if ``look_first`` (FIRST_LOOK)."""
    if theirs is None or (look_first and FIRST_LOOK and not first_look.could_match(sampled, theirs)):
        return None
    return geometry.verify_mirrored(query, theirs) if mirrored else geometry.verify(query, theirs)


def _stored(index: SearchIndex, stored: keypoints.VersionKeypoints, hit: Hit) -> geometry.Features | None:
    row = _stored_row(index, stored, hit)
    return stored.get(row) if row is not None else None


def _stored_row(index: SearchIndex, stored: keypoints.VersionKeypoints, hit: Hit) -> int | None:
    """The version's row of a hit whose features and hash are stored (None: a live addition)."""
    row = index.rows_by_id.get(hit.id)
    return row if row is not None and row < len(stored) else None


def _once(image: Image.Image | None, read: Callable[[], Image.Image | None] | None):
    """The query's picture, read at most once and only when a match must be judged."""
    cache: list[Image.Image | None] = [] if image is None else [image]

    def get() -> Image.Image | None:
        if not cache:
            cache.append(read() if read is not None else None)
        return cache[0]

    return get


def _picture(index: SearchIndex, item: store.Item) -> Image.Image | None:
    """An indexed item's picture at the size its features were found at (None: unreadable now)."""
    try:
        return imaging.open_rgb(index.collection_root / item.path, min_side=geometry.ANALYSED_SIDE)
    except (imaging.UnreadableImage, OSError):
        return None


def _in_the_picture(
    index: SearchIndex, query: Callable[[], Image.Image | None], match: geometry.Match, hit: Hit
) -> bool:
    """Whether a verified candidate is the query's picture, not a picture shown in the same
    frame (same_picture.in_the_picture); read only for a match: a search verifies one or two.
    Where either picture cannot be read the match stands, as the build's verdicts do."""
    row = index.rows_by_id.get(hit.id)
    mine = query()
    theirs = _picture(index, index.items[row]) if row is not None and mine is not None else None
    return mine is None or theirs is None or same_picture.in_the_picture(mine, theirs, match)


def _checkable(index: SearchIndex, stored: keypoints.VersionKeypoints, hit: Hit) -> bool:
    return _stored(index, stored, hit) is not None
