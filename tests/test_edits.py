"""Edited copies made in memory, and the borders trimmed off before embedding."""

import numpy as np
import pytest
from PIL import Image

from helpers import requires_shared
from imgsim import config
from imgsim.images import edits, imaging


def _photo(size=(80, 60), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("name", sorted(edits.EDITS))
def test_every_edit_gives_an_rgb_copy_and_leaves_the_original_alone(name):
    photo = _photo()
    before = np.asarray(photo).copy()
    edited = edits.apply(name, photo)
    assert edited.mode == "RGB" and edited is not photo
    assert np.array_equal(np.asarray(photo), before)


def test_edits_change_what_they_say():
    photo = _photo((80, 60))
    assert edits.apply("resize_50", photo).size == (40, 30)
    assert edits.apply("rotate_90", photo).size == (60, 80)
    assert edits.apply("border_20", photo).size == (80 + 2 * 16, 60 + 2 * 12)
    assert edits.apply("crop_70", photo).size == (56, 42)
    gray = np.asarray(edits.apply("grayscale", photo)).astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert set(edits.CALIBRATION) <= set(edits.EDITS)


def test_a_uniform_border_is_trimmed_back_to_the_photo():
    photo = _photo((80, 60))
    for name in ("border_10", "border_20"):
        trimmed = imaging.trim_border(edits.apply(name, photo))
        assert np.array_equal(np.asarray(trimmed), np.asarray(photo))
    black = edits.border(0.1, (0, 0, 0))(photo)
    assert imaging.trim_border(black).size == photo.size


@requires_shared
def test_a_border_saved_as_jpeg_is_trimmed_without_a_line_of_ringing_left():
    """JPEG ringing along a frame's inner edge left a line or two of frame (129x129 or 130x130 of a
    128x128 flower), and such a line moved a flower's vector to cosine 0.67 of its original."""
    import io

    for photo in sorted(config.SHARED_FLOWERS.glob("*/*.jpg"))[::600]:
        original = Image.open(photo).convert("RGB")
        buffer = io.BytesIO()
        edits.apply("border_10", original).save(buffer, "JPEG", quality=95)
        trimmed = imaging.trim_border(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        assert trimmed.size == original.size, (photo.name, trimmed.size)


def test_a_photo_without_a_border_and_a_blank_picture_are_left_as_they_are():
    photo = _photo()
    assert imaging.trim_border(photo) is photo
    blank = Image.new("RGB", (50, 50), (255, 255, 255))
    assert imaging.trim_border(blank) is blank
    dot = Image.new("RGB", (100, 100), (255, 255, 255))
    dot.paste((0, 0, 0), (40, 40, 50, 50))  # 1 % of the area: a blank page with a speck, kept
    assert imaging.trim_border(dot) is dot
