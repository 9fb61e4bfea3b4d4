"""The first look: a sample of the query's keypoints lets a copy's original through to verification
and turns away nearly every other photo, so that a search pays for full verification only there."""

import random

import numpy as np
import pytest

from helpers import requires_shared
from imgsim import config
from imgsim.images import edits, first_look, geometry, imaging
from imgsim.search import verification

# copies a search verifies beyond its ALWAYS nearest: turned, framed, cropped, recoloured
COPIES = ("rotate_90", "border_20", "crop_85", "brighter_40", "grayscale", "resize_25")


def _photos(count: int, seed: int = 0) -> list:
    return random.Random(seed).sample(sorted(config.SHARED_FLOWERS.rglob("*.jpg")), count)


def _query(image) -> geometry.Features:
    """A query's features as a search finds them."""
    return geometry.features(image, count=verification.QUERY_KEYPOINTS, hashed=False)


def test_the_sample_is_spread_over_all_the_keypoints():
    points = np.arange(600, dtype=np.float32).reshape(300, 2)
    features = geometry.Features(points, np.zeros((300, 32), np.uint8), (100, 100), False)
    sampled = first_look.sample(features)
    assert len(sampled.descriptors) == first_look.SAMPLE == len(sampled.points)
    assert sampled.points[0, 0] == 0 and sampled.points[-1, 0] > 0.8 * points[-1, 0]  # not the first 64


@requires_shared
@pytest.mark.parametrize("edit", COPIES)
def test_an_edited_copy_passes_the_first_look_at_its_original(edit):
    photos = _photos(12)
    passed = 0
    for path in photos:
        original = imaging.open_rgb(path)
        sampled = first_look.sample(_query(edits.apply(edit, original)))
        passed += first_look.could_match(sampled, geometry.features(original))
    assert passed >= 11, f"{edit}: {passed} of {len(photos)} copies passed"


@requires_shared
def test_other_photos_of_the_same_flower_rarely_pass_the_first_look():
    photos = _photos(40, seed=1)
    found = [geometry.features(imaging.open_rgb(path)) for path in photos]
    queries = [first_look.sample(_query(imaging.open_rgb(path))) for path in photos]
    pairs = [
        (n, m) for n in range(len(photos)) for m in range(len(photos)) if photos[n].parent == photos[m].parent
    ]
    different = [(n, m) for n, m in pairs if photos[n].read_bytes() != photos[m].read_bytes()]
    passed = sum(first_look.could_match(queries[n], found[m]) for n, m in different)
    assert passed <= 0.1 * len(different), f"{passed} of {len(different)} look-alike pairs passed"


def test_a_blank_picture_passes_no_first_look():
    from PIL import Image

    blank = geometry.features(Image.new("RGB", (64, 64), (90, 90, 90)))
    assert not first_look.could_match(first_look.sample(blank), blank)
