"""Whether two images show the same picture: local features matched and checked for one transform.

A global embedding says "these look alike"; it cannot tell a copy of a photo from another photo of
the same kind of flower. Local features can: OpenCV's ORB keypoints (binary, 32 bytes each, found
under turns, scaling, recolouring and re-encoding) are matched between the two images, and RANSAC
looks for one similarity transform (turn, uniform scale, shift) that most matches agree on. A copy,
however cropped, framed, turned, resized or turned gray, has many matches that fit one transform;
two different photos have matches that agree on nothing.

The transform then explains the match: where each image lies in the other (a polygon in each
image's own pixels), the share of each image the match covers, the turn and the scale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from imgsim.images import hamming, hashing

# Chosen on flowers5 (docs/benchmarks.md section 12): 60 photos, 10 kinds of edited copy, against
# each photo's 5 nearest other photos by the embedding. At 320 px, 500 keypoints and 12 inliers,
# every kind but a 70 % crop verified for 0.97-1.00 of the photos (the crop 0.90), and no
# look-alike did; 480 px lost small copies, 300 keypoints or 10 inliers let look-alikes through.
ANALYSED_SIDE = 320  # the longer side images are analysed at (small ones are enlarged to it)
KEYPOINTS = 500
RATIO = 0.8  # Lowe's ratio test: a match must be clearly better than the second best
MIN_INLIERS = 12  # matches that agree on one transform for a verified copy
MIN_INLIER_SHARE = 0.25  # of the matches that passed the ratio test
# On the 4,317 flowers the matches between different photos of one kind that got past the above
# had 12-13 inliers and turns of 9-146 degrees, or shared under a tenth of an image:
QUARTER_TOLERANCE = 5.0  # degrees a copy's turn may lie off a quarter turn
MIN_COVERAGE = 0.24  # of each image, the region the two share: a half crop (half of each side) shows a
# quarter of its picture, measured through the transform at 0.249-0.251 (at 0.25, 18 of 40 such crops
# of holidays_a photos failed on it)
MIN_SPREAD = 0.05  # the agreeing points must span this share of the region the images share
CLOSE = 40  # of 256 bits: descriptors this near are the same patch (where the ratio test cannot tell)
# A soft picture (a 70 % crop of a small photo, enlarged to ANALYSED_SIDE) has few corners at
# FAST's usual contrast: 4-24 keypoints, too few to verify 11 of 100 such crops on flowers5. The
# threshold is lowered until ENOUGH keypoints are found: 0.98 of those crops then verified, and
# still none of 1,800 look-alike pairs (docs/benchmarks.md section 12).
FAST_THRESHOLDS = (10, 5, 2)
ENOUGH = 150
# ORB's eight-level pyramid shrinks the picture 3.6x and keeps a 15-pixel border: a thinner one
# (a 4000 x 3 strip) has no keypoints, and OpenCV fails on it instead of saying so
MIN_ANALYSED_SIDE = 32


@dataclass(frozen=True)
class Features:
    """One image's local features, in the pixels of the image as given (not the analysed size)."""

    points: np.ndarray  # (n, 2) float32 x, y
    descriptors: np.ndarray  # (n, 32) uint8 ORB
    size: tuple[int, int]  # width, height of the image as given
    gray: bool  # the image carries (almost) no colour
    phash: np.ndarray | None = None  # (4, 8) uint8: its perceptual hash at each quarter turn, if known

    def nbytes(self) -> int:
        return self.points.nbytes + self.descriptors.nbytes


@dataclass(frozen=True)
class Match:
    """A verified match of image A (the query) with image B (a candidate)."""

    inliers: int
    turn: float  # degrees B is turned by against A, counter-clockwise, in (-180, 180]
    scale: float  # B's pixels per A's pixel
    a_in_b: list[tuple[float, float]]  # A's outline in B's pixels, clipped to B
    b_in_a: list[tuple[float, float]]  # B's outline in A's pixels, clipped to A
    coverage_a: float  # share of A that B shows
    coverage_b: float  # share of B that A shows
    size_a: tuple[int, int] = (0, 0)  # the pixels the polygons are in: A's and B's width, height
    size_b: tuple[int, int] = (0, 0)
    mirrored: bool = False  # B is A mirrored (left to right), then turned and scaled
    # the similarity from A's pixels (mirrored first where ``mirrored``) to B's, as found; not
    # stored (to_dict), so a match read back has none
    transform: np.ndarray | None = field(default=None, compare=False, repr=False)

    def rounded(self) -> Match:
        """This match as it is stored and shown (to_dict's precision): read back, it is the same."""
        return Match.from_dict(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Match:
        """A match as ``to_dict`` wrote it (copies.json, the API's ``verified``)."""
        sizes = data["query_size"], data["result_size"]
        return cls(
            inliers=data["inliers"],
            turn=data["turn"],
            scale=data["scale"],
            a_in_b=[(x, y) for x, y in data["query_in_region"]],
            b_in_a=[(x, y) for x, y in data["region_in_query"]],
            coverage_a=data["query_coverage"],
            coverage_b=data["result_coverage"],
            size_a=(sizes[0][0], sizes[0][1]),
            size_b=(sizes[1][0], sizes[1][1]),
            mirrored=data["mirrored"],
        )

    def to_dict(self) -> dict:
        return {
            "inliers": self.inliers,
            "turn": round(self.turn, 1),
            "scale": round(self.scale, 3),
            "mirrored": self.mirrored,
            "region_in_query": _rounded(self.b_in_a),
            "query_in_region": _rounded(self.a_in_b),
            "query_coverage": round(self.coverage_a, 3),
            "result_coverage": round(self.coverage_b, 3),
            "query_size": list(self.size_a),
            "result_size": list(self.size_b),
        }


def _is_gray(image: Image.Image) -> bool:
    small = np.asarray(image.convert("RGB").resize((32, 32)), np.int16)
    return int(np.abs(small - small.mean(axis=2, keepdims=True)).max()) <= 12


def features(
    image: Image.Image, side: int = ANALYSED_SIDE, count: int = KEYPOINTS, hashed: bool = True
) -> Features:
    """ORB keypoints of an image, analysed with its longer side at ``side`` pixels, and its
    perceptual hashes unless ``hashed`` is False (a query's: matching never reads them)."""
    analysed, factor = analysed_gray(image, side)
    gray, phash = _is_gray(image), hashing.turned(analysed) if hashed else None
    keypoints, descriptors = orb_keypoints(np.asarray(analysed), count)
    if descriptors is None:  # a blank or too thin picture: nothing to match
        nothing = np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
        return Features(*nothing, image.size, gray, phash)
    import cv2

    # (n, 2) float32: the keypoints' positions, 0.1 ms less than a loop over 300
    points = cv2.KeyPoint_convert(keypoints) / factor  # type: ignore[attr-defined]  # not in the stubs
    return Features(points, descriptors, image.size, gray, phash)


def analysed_gray(image: Image.Image, side: int = ANALYSED_SIDE) -> tuple[Image.Image, float]:
    """The image in gray with its longer side at ``side`` pixels, as its features are found, and
    the analysed pixels per pixel of the image as given."""
    width, height = image.size
    factor = side / max(width, height)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return image.convert("L").resize(size, Image.Resampling.BILINEAR), factor


def orb(count: int = KEYPOINTS, threshold: int = FAST_THRESHOLDS[0]) -> Any:
    """OpenCV's ORB as every analysis here uses it."""
    import cv2

    return cv2.ORB_create(  # type: ignore[attr-defined]  # not in OpenCV's stubs
        nfeatures=count, edgeThreshold=15, patchSize=15, fastThreshold=threshold
    )


def orb_keypoints(pixels: np.ndarray, count: int = KEYPOINTS) -> tuple[Sequence[Any], np.ndarray | None]:
    """ORB keypoints and descriptors of analysed gray pixels (None: a blank or too thin picture)."""
    if min(pixels.shape) < MIN_ANALYSED_SIDE:  # too thin for ORB's pyramid: nothing to match
        return (), None
    for threshold in FAST_THRESHOLDS:
        keypoints, descriptors = orb(count, threshold).detectAndCompute(pixels, None)
        if descriptors is not None and len(keypoints) >= ENOUGH:
            break
    return keypoints, descriptors


def _rounded(polygon: Sequence[tuple[float, float]]) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in polygon]


def _outline(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


def _clipped(polygon: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    area, clipped = cv2.intersectConvexConvex(polygon.astype(np.float32), _outline(size))
    return clipped.reshape(-1, 2) if clipped is not None and area > 0 else np.zeros((0, 2), np.float32)


def _area(polygon: np.ndarray) -> float:
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@dataclass(frozen=True)
class Matches:
    """Keypoints of A matched to keypoints of B: A's ``a[i]`` to B's ``b[i]`` (indices)."""

    a: np.ndarray
    b: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def ratio_matches(a: Features, b: Features) -> Matches:
    """A's keypoints' best matches in B that pass Lowe's ratio test (RATIO): each descriptor's two
    nearest in B by Hamming distance (hamming.two_nearest: the matches OpenCV's knnMatch keeps, as
    arrays, about twice as fast)."""
    if len(a.descriptors) == 0 or len(b.descriptors) < 2:  # no second nearest: no ratio to test
        return Matches(np.zeros(0, np.int64), np.zeros(0, np.int64))
    distances, nearest = hamming.two_nearest(a.descriptors, b.descriptors)
    kept = np.flatnonzero(distances[:, 0] < RATIO * distances[:, 1])
    return Matches(kept, nearest[kept, 0])


def points_of(a: Features, b: Features, matches: Matches) -> tuple[np.ndarray, np.ndarray]:
    """The points of A and of B that ``matches`` pair, in the same order: what RANSAC fits a
    transform to."""
    return a.points[matches.a], b.points[matches.b]


def turn_and_scale(transform: np.ndarray) -> tuple[float, float]:
    """The turn (degrees, as OpenCV's pixels run: y down) and the scale of a similarity transform."""
    cosine, sine = transform[0, 0], transform[1, 0]  # each times the scale
    return math.degrees(math.atan2(sine, cosine)), math.hypot(cosine, sine)


def turned_as_copies_are(turn: float, scale: float, tolerance: float = QUARTER_TOLERANCE) -> bool:
    """Whether a transform's turn lies within ``tolerance`` degrees of a quarter turn, at a scale
    between a tenth and tenfold: what a copy's may be."""
    return 0.1 <= scale <= 10 and abs(turn - 90 * round(turn / 90)) <= tolerance


def verify(a: Features, b: Features) -> Match | None:
    """The match of A with B where they show the same picture, else None."""
    import cv2

    if len(a.descriptors) < MIN_INLIERS or len(b.descriptors) < MIN_INLIERS:
        return None
    good = ratio_matches(a, b)
    if len(good) < MIN_INLIERS:  # a repeating pattern (a chessboard) has no clear best match:
        mutual = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(a.descriptors, b.descriptors)
        close = [m for m in mutual if m.distance <= CLOSE]  # mutual and close; RANSAC then decides
        good = Matches(
            np.array([m.queryIdx for m in close], np.int64), np.array([m.trainIdx for m in close], np.int64)
        )
    if len(good) < MIN_INLIERS:
        return None
    source, target = points_of(a, b, good)
    tolerance = 0.02 * max(b.size)  # pixels of B a matched point may lie off the transform
    transform, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance, maxIters=2000, confidence=0.995
    )
    if transform is None:
        return None
    inliers = int(mask.sum())
    if inliers < MIN_INLIERS or inliers < MIN_INLIER_SHARE * len(good):
        return None
    turn, scale = turn_and_scale(transform)
    if not turned_as_copies_are(turn, scale):
        return None  # copies are turned by quarter turns, if at all: another angle is chance
    match = matched_by(transform, inliers, a.size, b.size)
    if min(match.coverage_a, match.coverage_b) < MIN_COVERAGE:
        return None  # a small patch in common (a field of grass) is not the same picture
    inlying = source[mask.ravel().astype(bool)]
    if _area(cv2.convexHull(inlying).reshape(-1, 2)) < MIN_SPREAD * _area(np.array(match.b_in_a)):
        return None  # the agreeing matches crowd into one corner of what the images share: chance
    return match


def matched_by(
    transform: np.ndarray, inliers: int, size_a: tuple[int, int], size_b: tuple[int, int]
) -> Match:
    """The match a transform from A's pixels to B's (2 x 3, affine) makes of the two images: where
    each lies in the other, clipped to it, and the share of each the other shows."""
    import cv2

    inverse = cv2.invertAffineTransform(transform)
    a_in_b = _clipped(cv2.transform(_outline(size_a)[None], transform)[0], size_b)
    b_in_a = _clipped(cv2.transform(_outline(size_b)[None], inverse)[0], size_a)
    turn, scale = turn_and_scale(transform)
    return Match(
        inliers,
        -turn,
        scale,
        [(float(x), float(y)) for x, y in a_in_b],
        [(float(x), float(y)) for x, y in b_in_a],
        min(1.0, _area(b_in_a) / (size_a[0] * size_a[1])),
        min(1.0, _area(a_in_b) / (size_b[0] * size_b[1])),
        size_a,
        size_b,
        transform=transform,
    )


def mirrored_features(image: Image.Image, count: int = KEYPOINTS) -> Features:
    """The features of an image mirrored left to right (ORB's descriptors are not
    mirror-symmetric, so the mirrored image is analysed anew), once per query."""
    return features(ImageOps.mirror(image), count=count, hashed=False)


def verify_mirrored(mirrored: Features, b: Features) -> Match | None:
    """The match of an image with B where B shows it mirrored (a similarity transform cannot
    mirror), given the image's ``mirrored_features``, with both polygons in the image's own pixels."""
    match = verify(mirrored, b)
    if match is None:
        return None
    width = mirrored.size[0]
    unmirrored = [(width - x, y) for x, y in match.b_in_a]
    return dataclasses.replace(match, b_in_a=unmirrored, mirrored=True)


def transform_between(match: Match, factor_a: float, factor_b: float) -> np.ndarray:
    """The match's transform (A's pixels to B's, as the images were given; ``match.transform``
    must be set) between the two pictures resized by ``factor_a`` and ``factor_b``, as a 2 x 3
    matrix: what a check that looks again at both pictures, at its own size, carries places with."""
    assert match.transform is not None
    given = np.asarray(match.transform, np.float64)
    return np.hstack([given[:, :2] * (factor_b / factor_a), given[:, 2:] * factor_b])
