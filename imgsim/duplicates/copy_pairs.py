"""Verified copies: pairs of images that show the same picture (duplicates/grouping.py groups them).

The embedding proposes candidates (each image's nearest neighbours within a reach of the calibrated
duplicate distance), and so do near perceptual hashes and shared local features (images/hashing.py,
images/shared_features.py: copies the embedding puts far); geometric verification
(images/geometry.py) decides, and the two pictures must then agree beyond the matched points
(images/same_picture.py: two screenshots of one app's window, or different photos under one
watermark, match only there). Only verified pairs, and files with the same bytes, join a group, so a
chain of look-alike photos never becomes one. The pairs are found once per index version (the build
stores them in ``copies.json``); a request for another threshold only filters them, so no request
costs more than a pass over the stored pairs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imgsim import durable
from imgsim.duplicates import pair_evidence
from imgsim.images import capture, geometry, same_picture
from imgsim.index import migrate, store

COPIES_FILE = migrate.COPIES_FILE
CHECKS = 3  # what a version's verdicts were reached with (copies.json "checks"): 3, pairs of near
# hashes compared pixel for pixel; 2, pieces looked for and frames and overlays told; 1 (no "checks"),
# before them
REACH = 1.5  # candidates lie within this many times the calibrated duplicate distance
CANDIDATES = 5  # and among an image's nearest: a copy is among the very nearest
HASH_NEAR = 7  # bits: perceptual hashes this near make a candidate pair too (grayscale copies: 0-2,
# watermarked ones 0-6; on flowers5 with hard copies, 1 in 10,000 pairs of different photos at 16)
HASH_PER_ROW = 5  # and one is among the other's 5 nearest by bits (hashing.nearest_of_each): flat
# graphics lie within a few bits of hundreds of others (3,000 generated squares: 84,000 candidate
# pairs, 68 s, without it; 11,000 and 14.6 s with it; 20,000 and 14 s at 3 bits before)
MIRROR_NEAREST = 1  # a pair that does not verify is checked mirrored where one is the other's very
# nearest within the duplicate distance: the embedding hardly tells a mirrored copy from its picture
PIECE_NEAREST = 20  # of a row's nearest, at any distance, those whose file could be cut out of its
# file (or it out of theirs) are looked for in it pixel for pixel (images/pieces.py): a half crop of
# a small photo lay 1st-16th among its original's nearest for 11 of flowers5's 20 planted ones


FoundBy = Literal["embedding", "hash", "features", "piece"]  # what proposed a pair: the embedding's
# nearest, a near perceptual hash, the local features the two share, or one of the embedding's
# PIECE_NEAREST where one file could be a piece cut out of the other (the last three at any distance)


@dataclass(frozen=True)
class CopyMatch:
    """The verified match of a pair's first image against its second (as stored: rounded), whether
    each looks gray, what proposed the pair (FoundBy), and how
    much the two pictures agree beyond the matched points (None: a verdict reached before that
    was checked, or where it could not be told)."""

    match: geometry.Match
    a_gray: bool
    b_gray: bool
    found_by: FoundBy = "embedding"
    agreement: float | None = None
    checked: bool = False  # the agreement was looked at (a verdict from before it was is redone)
    taken_apart: float | None = None  # seconds between the two files' EXIF capture times, if both hold one
    times_read: bool = False  # the capture times were looked for (a verdict from before gets them read)
    recoloured: bool = False  # one's colours are the other's turned (images/recolour.py)
    framed: bool = False  # the one that holds the other's picture wholly holds it in a frame (a border,
    # a caption bar, an app's window: images/frames.py), not as the rest of a larger photo
    a_overlaid: bool = False  # A carries something laid over the picture (same_picture.overlaid)
    b_overlaid: bool = False

    @property
    def shot(self) -> bool:
        """Whether the match is of two shots of one scene, not of a copy: framed apart
        (same_picture.is_shot), or taken at different moments (a tripod, a burst)."""
        return same_picture.is_shot(self.match) or bool(self.taken_apart)

    def to_dict(self) -> dict:
        """As copies.json and the duplicates' answers hold it: the match's keys beside the grays."""
        found = {"found_by": self.found_by} if self.found_by != "embedding" else {}
        agreed = {"agreement": self.agreement} if self.checked else {}
        timed = {"taken_apart_s": self.taken_apart} if self.times_read else {}
        grays = {"a_gray": self.a_gray, "b_gray": self.b_gray}
        turned = {"recoloured": True} if self.recoloured else {}
        framed = {"framed": True} if self.framed else {}
        laid = {
            f"{side}_overlaid": True for side, on in (("a", self.a_overlaid), ("b", self.b_overlaid)) if on
        }
        return self.match.to_dict() | grays | found | agreed | timed | turned | framed | laid

    @classmethod
    def from_dict(cls, data: dict) -> CopyMatch:
        found_by: FoundBy = data.get("found_by", "embedding")
        match = geometry.Match.from_dict(migrate.copy_match(data))
        agreed, checked = data.get("agreement"), "agreement" in data
        grays = bool(data["a_gray"]), bool(data["b_gray"])
        timed = data.get("taken_apart_s"), "taken_apart_s" in data
        looked = bool(data.get("recoloured")), bool(data.get("framed"))
        laid = bool(data.get("a_overlaid")), bool(data.get("b_overlaid"))
        return cls(match, *grays, found_by, agreed, checked, *timed, *looked, *laid)


@dataclass(frozen=True)
class Pair:
    """Two rows that show the same picture: the same bytes (match None) or a verified match."""

    a: int
    b: int
    distance: float
    match: CopyMatch | None


Verdicts = dict[tuple[str, str], CopyMatch | None]  # (sha1, sha1) in order -> the match, None: refused


def same_bytes(items: list[store.Item]) -> list[Pair]:
    """Every pair of rows whose files have the same bytes (each with the first such row)."""
    pairs: list[Pair] = []
    first_of: dict[str, int] = {}
    for row in range(len(items)):
        sha1 = items[row].sha1
        if sha1 in first_of:
            pairs.append(Pair(first_of[sha1], row, 0.0, None))
        first_of.setdefault(sha1, row)
    return pairs


def _candidates(
    items: list[store.Item],
    neighbours: Callable[[int], tuple[list[int], list[float]]],
    reach: float,
    rows: Iterable[int] | None,
    elsewhere: dict[FoundBy, Mapping[tuple[int, int], float]],
    mirror_within: float,
    sizes: Callable[[int], tuple[int, int] | None] | None = None,
) -> tuple[dict[tuple[int, int], float], set[tuple[int, int]], dict[tuple[int, int], FoundBy]]:
    """find_pairs' candidate pairs (oriented, with their distances), those to check mirrored too,
    and what proposed those the embedding's nearest within reach did not (``elsewhere``: by what,
    pairs and distances; with ``sizes``, the pieces among each row's PIECE_NEAREST are added)."""
    candidates: dict[tuple[int, int], float] = {}
    mirror_candidates: set[tuple[int, int]] = set()
    pieces_near: dict[tuple[int, int], float] = {}
    wanted = None if rows is None else set(rows)
    for row in range(len(items)) if wanted is None else sorted(wanted):
        sha1 = items[row].sha1
        near, distances = neighbours(row)
        nearest = list(zip(near, distances, strict=True))[: max(CANDIDATES, PIECE_NEAREST) + 1]
        others = [(other, distance) for other, distance in nearest if other != row]  # itself among them
        for rank, (other, distance) in enumerate(others):
            if items[other].sha1 == sha1:
                continue
            oriented = (row, other) if sha1 < items[other].sha1 else (other, row)
            if rank < CANDIDATES and distance <= reach:
                candidates.setdefault(oriented, float(distance))
                if rank < MIRROR_NEAREST and distance <= mirror_within:
                    mirror_candidates.add(oriented)
            elif (
                rank < PIECE_NEAREST and sizes is not None and pair_evidence.could_be_piece(sizes, row, other)
            ):
                pieces_near.setdefault(oriented, float(distance))
    elsewhere = elsewhere | {"piece": {**elsewhere.get("piece", {}), **pieces_near}}
    proposed: dict[tuple[int, int], FoundBy] = {}
    for found_by, pairs in elsewhere.items():
        for (a, b), distance in pairs.items():
            if items[a].sha1 != items[b].sha1 and (wanted is None or a in wanted or b in wanted):
                oriented = (a, b) if items[a].sha1 < items[b].sha1 else (b, a)
                if oriented not in candidates:
                    proposed[oriented] = found_by
                    candidates[oriented] = float(distance)
    return candidates, mirror_candidates, proposed


@dataclass(frozen=True)
class Proposals:
    """Candidate pairs beyond the embedding's nearest, each with its distance, checked whatever
    that is: near perceptual hashes (grayscale copies), shared local features (screenshots,
    recoloured and watermarked copies), a piece's pixels found in a picture (images/piece_search.py:
    crops of small photos)."""

    hashed: Mapping[tuple[int, int], float] = dataclasses.field(default_factory=dict)
    shared: Mapping[tuple[int, int], float] = dataclasses.field(default_factory=dict)
    pieces: Mapping[tuple[int, int], float] = dataclasses.field(default_factory=dict)


def _timed(
    pair: tuple[int, int], verdict: CopyMatch, taken: Callable[[int], capture.Taken | None] | None
) -> CopyMatch:
    """The verdict with the seconds between the two photos' capture times (EXIF), once read."""
    if taken is None or verdict.times_read:
        return verdict
    return dataclasses.replace(verdict, taken_apart=capture.apart(*map(taken, pair)), times_read=True)


def _by_pixels(
    pair: tuple[int, int], evidence: pair_evidence.Evidence, grays: tuple[bool, bool], pixel_for_pixel: bool
) -> CopyMatch | None:
    """The verdict on a pair whose keypoints did not make it a copy, by its pixels: a piece cut out
    of the other (images/pieces.py), or with ``pixel_for_pixel`` the same picture at one size, perhaps
    with something laid over one (images/overlays.py); ``grays``: whether each looks gray."""
    if evidence.grays is None or evidence.sizes is None:
        return None
    cut = pair_evidence.cut(pair, evidence.sizes, evidence.grays)  # correlated: agreeing everywhere
    if cut is not None:
        return _timed(pair, CopyMatch(cut.rounded(), *grays, checked=True), evidence.taken)
    same = pair_evidence.same_pixels(pair, evidence.sizes, evidence.grays) if pixel_for_pixel else None
    if same is None:
        return None
    match, pixels = same
    found = CopyMatch(match.rounded(), *grays, agreement=pixels.share, checked=True)
    laid = dataclasses.replace(found, a_overlaid=pixels.carrier == 0, b_overlaid=pixels.carrier == 1)
    return _timed(pair, laid, evidence.taken)


def _verdict(
    pair: tuple[int, int],
    evidence: pair_evidence.Evidence,
    mirror: bool,
    piece_only: bool = False,
    pixel_for_pixel: bool = False,
) -> CopyMatch | None:
    """A candidate pair's verdict, reached anew: verified (and mirrored, with ``mirror``), else by
    its pixels (_by_pixels; only a piece with ``piece_only``: a candidate for nothing else; the same
    pixels too with ``pixel_for_pixel``: a pair of near perceptual hashes). A verified pair must agree beyond
    its matched points or be shots, or have the same pixels (an overlay's text drew its matches)."""
    mine, theirs = evidence.features(pair[0]), evidence.features(pair[1])
    if mine is None or theirs is None:
        return None
    grays = (mine.gray, theirs.gray)
    match = None if piece_only else geometry.verify(mine, theirs)
    if match is None and mirror and evidence.mirrored is not None:
        flipped = evidence.mirrored(pair[0])
        match = geometry.verify_mirrored(flipped, theirs) if flipped is not None else None
    if match is None:
        return _by_pixels(pair, evidence, grays, pixel_for_pixel and not piece_only)
    pictures = evidence.pictures
    if pictures is None:
        return _timed(pair, CopyMatch(match.rounded(), mine.gray, theirs.gray), evidence.taken)
    looked = pair_evidence.agreed(match, pictures, *pair)
    kept = CopyMatch(match.rounded(), mine.gray, theirs.gray, agreement=looked.share, checked=True)
    kept = _timed(
        pair,
        dataclasses.replace(
            kept,
            recoloured=looked.recoloured,
            framed=looked.framed,
            a_overlaid=looked.overlaid == 0,
            b_overlaid=looked.overlaid == 1,
        ),
        evidence.taken,
    )
    if looked.agrees or kept.shot:  # shots differ beyond their match: that is what they are (subjects
        return kept  # move); an overlay's match lies at the same place in both pictures
    return _by_pixels(pair, evidence, grays, pixel_for_pixel=True)


def find_pairs(
    items: list[store.Item],
    neighbours: Callable[[int], tuple[list[int], list[float]]],
    reach: float,
    evidence: pair_evidence.Evidence,
    known: Verdicts | None = None,
    threads: int = 0,
    rows: Iterable[int] | None = None,
    proposals: Proposals = Proposals(),
    mirror_within: float = 0.0,
    redo_refusals: bool = False,
) -> tuple[list[Pair], Verdicts]:
    """Every pair of the same bytes, and every candidate pair within ``reach`` (among each row's
    CANDIDATES nearest) that verifies; and the verdict on every candidate checked.

    A verdict depends only on the two files' contents, so one ``known`` from an earlier version
    is reused, and a rebuild verifies only the pairs its changes made. OpenCV releases the GIL:
    the candidates are checked in threads. Each pair is oriented from the file with the lower
    SHA-1 to the other, so that a verdict reads the same whatever rows the files have. ``rows``
    limits the candidates to those of some rows (a build's new items; the rest were checked by
    the builds before); pairs of the same bytes are always found over every row. ``proposals``:
    more candidate pairs, checked whatever their distance and marked ``found_by`` "hash",
    "features" or "piece"; a pair of near hashes that does not verify, or verifies but does not
    agree beyond its matches, is compared pixel for pixel where its files are of one size (a
    watermark on a soft photo: images/overlays.py). With ``evidence.grays`` and ``evidence.sizes``, a
    pair that does not verify where one file could be cut out of the other is looked for in it pixel
    for pixel (images/pieces.py),
    and so are such pairs among each row's PIECE_NEAREST ("piece"). With ``evidence.mirrored``, a
    pair that does not verify is checked again mirrored where one is the other's MIRROR_NEAREST
    nearest within ``mirror_within``. With
    ``evidence.pictures``, a verified pair must also agree beyond its matched points or is refused
    (a known verdict from before that check is redone). With ``evidence.taken``, two shots taken
    at different moments are told from copies (a known match from before gets its times read).
    ``redo_refusals``: a known refusal of a pair that could be a piece or whose hashes are near is
    reached anew (a verdict from before pixels were compared, CHECKS)."""
    known = known or {}
    pairs = same_bytes(items)
    elsewhere: dict[FoundBy, Mapping[tuple[int, int], float]] = {"hash": proposals.hashed}
    elsewhere["features"] = proposals.shared
    elsewhere["piece"] = proposals.pieces
    cuts = evidence.sizes if evidence.grays is not None else None  # pieces need both
    found = _candidates(items, neighbours, reach, rows, elsewhere, mirror_within, cuts)
    candidates, mirror_candidates, proposed = found

    hashes_near = set(proposals.hashed) | {(b, a) for a, b in proposals.hashed}  # compared pixel for pixel

    def could_be_piece(pair: tuple[int, int]) -> bool:
        return cuts is not None and pair_evidence.could_be_piece(cuts, *pair)

    def check(pair: tuple[int, int]) -> tuple[tuple[str, str], CopyMatch | None]:
        key = (items[pair[0]].sha1, items[pair[1]].sha1)
        if key in known:
            verdict = known[key]  # a refusal stands, but for one from before pieces of a possible piece
            if verdict is None and not (redo_refusals and (could_be_piece(pair) or pair in hashes_near)):
                return key, None
            if verdict is not None and (evidence.pictures is None or verdict.checked):  # a match from
                return key, _timed(pair, verdict, evidence.taken)  # before the agreement check is redone
        piece_only = proposed.get(pair) == "piece"
        return key, _verdict(pair, evidence, pair in mirror_candidates, piece_only, pair in hashes_near)

    ordered = sorted(candidates)
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        verdicts = dict(pool.map(check, ordered))
    for pair in ordered:
        match = verdicts[items[pair[0]].sha1, items[pair[1]].sha1]
        if match is not None:
            match = dataclasses.replace(match, found_by=proposed[pair]) if pair in proposed else match
            pairs.append(Pair(pair[0], pair[1], round(candidates[pair], 6), match))
    return pairs, verdicts


def save(
    version: Path,
    pairs: list[Pair],
    reach: float,
    verdicts: Verdicts,
    items: list[store.Item],
    pending: Iterable[int] = (),
) -> None:
    """The version's pairs, and the verdicts on the contents its ``items`` still hold: those of
    files deleted since are dropped (they were kept by every build after, so copies.json grew with
    every addition ever made: 20,061 verdicts, 4.7 MB parsed and written by each compaction after
    40 minutes of a soak's additions and deletions; a file that comes back is verified again).
    ``pending``: the ids of items whose candidate pairs are not checked yet (pending_of)."""
    held = {item.sha1 for item in items}
    body = {
        "checks": CHECKS,
        "reach": reach,
        "pairs": [[p.a, p.b, p.distance, _stored(p.match)] for p in pairs],
        "verdicts": [[a, b, _stored(match)] for (a, b), match in verdicts.items() if a in held and b in held],
        "pending": sorted(set(pending)),
    }
    durable.atomic_write(version / COPIES_FILE, lambda handle: handle.write(json.dumps(body).encode()))


def load(version: Path) -> tuple[float, list[Pair]] | None:
    """The pairs a build stored in a version, or None for a version built before them."""
    body = migrate.stored_copies(version)
    if body is None:
        return None
    return float(body["reach"]), [Pair(a, b, d, _read(m)) for a, b, d, m in body["pairs"]]


def _body(version: Path | None) -> dict:
    """A version's copies.json as stored, empty where it has none (or no version is given)."""
    return (migrate.stored_copies(version) if version is not None else None) or {}


def checks_of(version: Path | None) -> int:
    """What a version's verdicts were reached with (CHECKS; 1: before pieces, frames, overlays)."""
    body = _body(version)
    return int(body.get("checks", 1))


def written_at(version: Path) -> tuple[int, int] | None:
    """Which copies.json a version holds now (its inode and time): a compaction replaces it once
    it has checked its additions' copies, so what was read from the one before is stale."""
    try:
        seen = (Path(version) / COPIES_FILE).stat()
    except FileNotFoundError:
        return None
    return seen.st_ino, seen.st_mtime_ns


def pending_of(version: Path | None) -> set[int]:
    """The ids of the items a version was published with before their copies were checked (a
    compaction checks them just after it publishes; one killed in between leaves them to the next)."""
    body = _body(version)
    return {int(item_id) for item_id in body.get("pending", [])}


def verdicts_of(version: Path | None) -> Verdicts:
    """The verdicts a version's build reached, to reuse (none where it stored none)."""
    body = _body(version)
    return {(a, b): _read(match) for a, b, match in body.get("verdicts", [])}


def _stored(match: CopyMatch | None) -> dict | None:
    return match.to_dict() if match is not None else None


def _read(stored: dict | None) -> CopyMatch | None:
    return CopyMatch.from_dict(stored) if stored is not None else None
