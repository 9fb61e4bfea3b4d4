"""A recoloured copy says so (issue 36: each copy says what it is): a hue shift or a sepia copy
turns its picture's hues, a saturation filter raises or lowers its colour; re-encoding, brightening
and darkening keep both."""

import functools
import io
import random

import pytest
from PIL import Image, ImageEnhance

from helpers import requires_shared
from imgsim import config
from imgsim.duplicates import copy_pairs, grouping
from imgsim.images import edits, geometry, imaging, recolour
from imgsim.measure import hard_copies

pytestmark = requires_shared

TURNED = {"hue_shift_40": hard_copies.KINDS["hue_shift_40"], "sepia": hard_copies.sepia}
SATURATED = {
    "colour_x1.5": lambda image: ImageEnhance.Color(image).enhance(1.5),
    "half_the_colour": functools.partial(edits.apply, "grayscale_50"),
}
KEPT = {
    kind: functools.partial(edits.apply, kind)
    for kind in ("reencode_q30", "brighter_40", "darker_40", "crop_85")
}


def _as_built(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return imaging.open_rgb(buffer.getvalue(), 10_000_000, geometry.ANALYSED_SIDE)


def _recoloured(edit) -> list[bool]:
    files = sorted(config.SHARED_FLOWERS.rglob("*.jpg"))
    told = []
    for path in random.Random(4).sample(files, 10):
        photo = _as_built(imaging.open_rgb(path))
        copy = _as_built(edit(imaging.open_rgb(path)))
        match = geometry.verify(geometry.features(copy), geometry.features(photo))
        if match is not None:
            told.append(recolour.recoloured(copy, photo, match))
    return told


@pytest.mark.parametrize("kind", TURNED)
def test_a_copy_whose_hues_were_turned_is_recoloured(kind):
    told = _recoloured(TURNED[kind])
    assert len(told) >= 8 and sum(told) >= 7, told  # a nearly gray photo has too little colour to tell


@pytest.mark.parametrize("kind", SATURATED)
def test_a_copy_whose_colour_was_raised_or_lowered_is_recoloured(kind):
    """Regression: a saturation filter keeps every hue, and such copies were called re-encoded."""
    told = _recoloured(SATURATED[kind])
    assert len(told) >= 8 and sum(told) >= 7, told


@pytest.mark.parametrize("kind", KEPT)
def test_a_copy_that_keeps_its_hues_is_not(kind):
    told = _recoloured(KEPT[kind])
    assert len(told) >= 8 and not any(told), told


def test_a_recoloured_copy_says_so_and_keeps_it_through_copies_json():
    outline = [(0.0, 0.0), (63.0, 0.0), (63.0, 63.0), (0.0, 63.0)]
    match = geometry.Match(30, 0.0, 1.0, outline, outline, 1.0, 1.0, (64, 64), (64, 64))
    turned = copy_pairs.CopyMatch(match, False, False, agreement=0.97, checked=True, recoloured=True)
    assert copy_pairs.CopyMatch.from_dict(turned.to_dict()) == turned
    assert grouping.what_it_is(turned, copy_is_a=True) == "recoloured"
