"""Whether two photos show the same scene: the same place or thing, photographed again.

A copy's keypoints agree on one similarity transform at a quarter turn (geometry.verify). Two
photos of one scene from another viewpoint do not: the camera moved, so the scene is foreshortened
and turned by any angle, and fewer keypoints survive the change of light and view. Their matches
still agree on one affine transform over the part of the scene both show (Philbin et al., CVPR
2007: spatial re-ranking); photos that merely look alike (two daisies, two beaches) do not.

Chosen on the shared EfficientNet-Lite0's 10 nearest of each of 150 Holidays queries and 100
flowers5 photos, checked against the stored features as a search checks them (docs/benchmarks.md
section 16): with 15 agreeing matches, a fifth of those past the ratio test, a scale between a
quarter and fourfold, neither axis squeezed below half the other and a turn within 20 degrees of a
quarter turn, 97 of 228 Holidays photos of the query's scene passed, none of 1,272 other Holidays
photos and 2 of 1,000 flowers5 look-alikes (TURN_TOLERANCE is now 10). The full check is made
where a first look at 64 sampled keypoints finds 4 agreeing on a similarity within the tolerance
(first_look.could_match, loosened): searched by id as the service searches, at 20 degrees Holidays
results labelled same scene were 83 of their scene's photos, against 80 with an affine over 5
sampled points, from a full check of 51 in 1,459 candidates.

Photos that share only what surrounds them (one app's window around two screenshots, one caption
or watermark) agree on an affine too, with most agreeing points where one's frame stretched onto
the other's puts them; such a match is refused (framed_alike): of 30 ordered pairs of screenshots
of different flowers in one viewer's window, 26 matched before (32-60 agreeing points), none after,
and the Holidays results labelled same scene stayed the same.
"""

from __future__ import annotations

import numpy as np

from imgsim.images import first_look, geometry

MIN_INLIERS = 15  # matches agreeing on one affine transform
MIN_INLIER_SHARE = 0.2  # of the matches past the ratio test
TOLERANCE = 0.03  # of B's longer side: how far a matched point may lie off the transform
SCALES = (0.25, 4.0)  # how much larger the scene may be in B than in A
MIN_AXES = 0.5  # the transform's shorter axis against its longer: a view from the side, not a smear
TURN_TOLERANCE = 10.0  # degrees off a quarter turn: a camera is held level, or turned for a portrait
# (Perd'och, Chum & Matas, CVPR 2009: the gravity vector). Of the Holidays results labelled at 20
# degrees, all 83 of the query's scene, 78 lay within 10; of flowers5's 25 pairs, the 5 different
# photos (by eye) lay 12 to 15 off but one (0.5), the 20 second shots within 7 but one (19)
FRAMED_ALIKE = 0.01  # of B's longer side: a point this near where A's frame stretched onto B's puts it
FRAMED_SHARE = 0.5  # of the agreeing points so placed: the match is of what surrounds the pictures


def _affine(
    a: geometry.Features, b: geometry.Features, iterations: int
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
    """The affine transform most ratio-test matches of A in B agree on, the points of A and of B
    that do, and how many matches there were."""
    import cv2

    nothing = np.zeros((0, 2), np.float32)
    if len(a.descriptors) < 2 or len(b.descriptors) < 2:
        return None, nothing, nothing, 0
    good = geometry.ratio_matches(a, b)
    if len(good) < 3:
        return None, nothing, nothing, len(good)
    source, target = geometry.points_of(a, b, good)
    transform, mask = cv2.estimateAffine2D(
        source,
        target,
        method=cv2.RANSAC,
        ransacReprojThreshold=TOLERANCE * max(b.size),
        maxIters=iterations,
        confidence=0.995,
    )
    if transform is None:
        return None, nothing, nothing, len(good)
    agreeing = mask.ravel().astype(bool)
    return transform, source[agreeing], target[agreeing], len(good)


def could_be(sampled: geometry.Features, b: geometry.Features) -> bool:
    """Whether a sample of A's keypoints (first_look.sample) already agrees with B's on a view
    near level: worth the full check. A few points place an affine transform too loosely to judge
    its turn, so the look fits a similarity, as a copy's first look does, more loosely."""
    return first_look.could_match(sampled, b, tolerance=TURN_TOLERANCE, reach=TOLERANCE)


def match(a: geometry.Features, b: geometry.Features) -> geometry.Match | None:
    """The match of A with B where they show the same scene (the region of each in the other),
    else None."""
    transform, in_a, in_b, matched = _affine(a, b, iterations=2000)
    inliers = len(in_a)
    if transform is None or inliers < MIN_INLIERS or inliers < MIN_INLIER_SHARE * matched:
        return None
    if not _a_view(transform) or framed_alike(in_a, in_b, a.size, b.size):
        return None
    return geometry.matched_by(transform, inliers, a.size, b.size)


def _a_view(transform: np.ndarray) -> bool:
    """Whether an affine transform is one a second photo of a scene could have: held near level
    (or a quarter turn), not much nearer or further, not squeezed flat."""
    longer, shorter = np.linalg.svd(transform[:, :2], compute_uv=False)
    if not SCALES[0] <= longer <= SCALES[1] or shorter < MIN_AXES * longer:
        return False
    return geometry.turned_as_copies_are(*geometry.turn_and_scale(transform), tolerance=TURN_TOLERANCE)


def framed_alike(
    in_a: np.ndarray, in_b: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]
) -> bool:
    """Whether most agreeing points lie where A's frame stretched onto B's puts them: what agrees
    is anchored to the borders (the same app's window around two screenshots, one caption or
    watermark on two photos). Another view of a scene moves it within the frame; a second shot
    that moved nothing and still is no copy (copies are checked first) differs where the pictures
    are, not around them."""
    stretched = in_a * (np.array(size_b, np.float64) / np.array(size_a, np.float64))
    off = np.linalg.norm(stretched - in_b, axis=1)
    return bool(np.mean(off <= FRAMED_ALIKE * max(size_b)) >= FRAMED_SHARE)
