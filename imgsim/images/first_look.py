"""A first look at whether an image could be a copy of another, at a fifth of verification's cost.

A search checks its 40 nearest candidates for being the query's very picture (geometry.verify);
for a photo the collection does not hold all 40 fail, and matching all of the query's keypoints
against each was nearly all of the search's time. A copy keeps its picture's keypoints across the
whole picture, so a sample of the query's keypoints evenly spaced over all of them already
finds a few in the copy that agree on one transform at a quarter turn; between two different
pictures such agreement is rare. Candidates with none are not verified.

Chosen on flowers5 less 100 held-out photos (EfficientNet-Lite0), each candidate's first look
beside its full verification for 100 photos x 14 edit kinds: 64 keypoints, a match kept at
geometry.RATIO (0.8), and 4 agreeing on a transform turned within 8 degrees of a quarter turn
turned away 9 of 1,339 verified originals, all among the 5 nearest (which search.verification
verifies in full), and let through 2.9 % of held-out flowers' candidates, 0.4 % of Holidays
photos' (96 keypoints: 1 original, 5.9 % and 1.2 %). docs/benchmarks.md section 15: verification
of a photo the collection lacks 32 -> 19 ms, every edit kind's rank 1 the same.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from imgsim.images import geometry

SAMPLE = 64  # of the query's keypoints, spread over all of them
MIN_AGREEING = 4  # sampled matches agreeing on one transform
TURN_TOLERANCE = 8.0  # degrees off a quarter turn (a few points place the transform loosely)
REACH = 0.02  # of B's longer side: how far a sampled match may lie off the transform
REFINED = False  # True: RANSAC's transform refined (Levenberg-Marquardt) before its turn is judged
# Refining changes no inlier (OpenCV keeps RANSAC's mask) and only the turn's last degree or so,
# and was two thirds of a look's RANSAC call (74 -> 24 us; 789 of 789 calls the same inliers, held-
# out flowers against their 40 nearest). Over 74,000 candidates of edited copies, held-out flowers
# and Holidays photos the looks that pass moved 3,142 -> 3,146, about 300 changing either way at
# the tolerance's edge; docs/benchmarks.md section 21. Full verification still refines.


def sample(features: geometry.Features, count: int = SAMPLE) -> geometry.Features:
    """``count`` of an image's keypoints evenly spaced over all of them: ORB lists them scale by
    scale, so each scale keeps its share (a JPEG q10 copy keeps its coarse keypoints: of 1,339
    verified originals, 64 of the first keypoints turned away 37, 64 evenly spaced 9, 96 evenly
    spaced 1), and the strongest would crowd onto a frame's corners, where a bordered copy differs."""
    count = min(count, len(features.descriptors))
    chosen = np.unique(np.linspace(0, len(features.descriptors) - 1, count).round().astype(np.int64))
    return dataclasses.replace(
        features, points=features.points[chosen], descriptors=features.descriptors[chosen]
    )


def could_match(
    sampled: geometry.Features, b: geometry.Features, tolerance: float = TURN_TOLERANCE, reach: float = REACH
) -> bool:
    """Whether MIN_AGREEING of the ``sampled`` keypoints (``sample``) match B's on one similarity
    transform within ``tolerance`` degrees of a quarter turn, each within ``reach`` of B's longer
    side: worth verifying (a copy; same_scene.could_be asks it more loosely for a scene)."""
    import cv2

    if len(sampled.descriptors) < 2 or len(b.descriptors) < 2:
        return False
    good = geometry.ratio_matches(sampled, b)
    if len(good) < MIN_AGREEING:
        return False
    source, target = geometry.points_of(sampled, b, good)
    transform, mask = cv2.estimateAffinePartial2D(
        source,
        target,
        method=cv2.RANSAC,
        ransacReprojThreshold=reach * max(b.size),
        maxIters=500,
        confidence=0.99,
        refineIters=10 if REFINED else 0,
    )
    if transform is None or int(mask.sum()) < MIN_AGREEING:
        return False
    return geometry.turned_as_copies_are(*geometry.turn_and_scale(transform), tolerance=tolerance)
