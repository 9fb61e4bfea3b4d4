"""A picture held wholly in another file is framed there (a caption bar, an app's window, a border)
or is a crop of the larger photo (images/frames.py): the match alone cannot tell the two apart."""

from __future__ import annotations

import pytest
from PIL import Image

from helpers import requires_shared
from imgsim import config
from imgsim.duplicates import pair_evidence
from imgsim.images import edits, geometry, imaging
from imgsim.measure import hard_copies

pytestmark = requires_shared
PHOTO = "rose/1788484468_f73afa6c32_n.jpg"


def photo() -> Image.Image:
    return imaging.open_rgb(config.SHARED_FLOWERS / PHOTO)


def looked_at(first: Image.Image, second: Image.Image) -> pair_evidence.Looked:
    match = geometry.verify(geometry.features(first), geometry.features(second))
    assert match is not None
    return pair_evidence.agreed(match, [first, second].__getitem__, 0, 1)


@pytest.mark.parametrize(
    "frame",
    [hard_copies.caption, hard_copies.screenshot, edits.EDITS["border_20"]],
    ids=["caption", "screenshot", "border"],
)
def test_a_photo_shown_inside_a_frame_is_held_in_a_frame(frame):
    assert looked_at(photo(), frame(photo())).framed


def test_a_crop_of_a_photo_is_not_framed_by_the_rest_of_it():
    assert not looked_at(photo(), edits.centre_crop(0.7)(photo())).framed


def test_a_copy_the_same_size_is_held_by_neither():
    assert pair_evidence.holder_of(geometry.verify(*(geometry.features(photo()),) * 2)) is None
