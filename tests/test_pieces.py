"""A piece cut out of a picture pixel for pixel is found where it was cut (images/pieces.py): a half
crop of a small photo, which local features cannot verify, is a copy."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from helpers import evidence_in, requires_shared
from imgsim import config
from imgsim.duplicates import copy_pairs, grouping, pair_evidence
from imgsim.images import edits, geometry, imaging, pieces
from imgsim.index import store

pytestmark = requires_shared
SOFT = "dandelion/6132275522_ce46b33c33_m.jpg"  # 128 pixels: its half crop verifies by no keypoints
ANOTHER = "dandelion/2476098674_e6f39536f5_n.jpg"


def photo(name: str = SOFT) -> Image.Image:
    return imaging.open_rgb(config.SHARED_FLOWERS / name)


def half_of(picture: Image.Image) -> Image.Image:
    return edits.centre_crop(0.5)(picture)


def test_a_half_crop_of_a_small_photo_is_found_where_it_was_cut():
    picture = photo()
    piece = half_of(picture)
    assert geometry.verify(geometry.features(picture), geometry.features(piece)) is None  # keypoints cannot
    match = pieces.cut_from(picture, piece, picture.size, piece.size)
    assert match is not None
    assert match.coverage_a == pytest.approx(0.25, abs=0.01) and match.coverage_b == pytest.approx(1.0)
    assert min(match.b_in_a) == pytest.approx((32, 32))  # the piece's corner in the picture
    assert match.scale == pytest.approx(1.0) and match.turn == pytest.approx(0.0)


def test_saved_as_a_jpeg_the_piece_is_still_found():
    picture = photo()
    saved = io.BytesIO()
    half_of(picture).save(saved, "JPEG", quality=50)
    piece = imaging.decode_rgb(saved.getvalue())
    assert pieces.cut_from(picture, piece, picture.size, piece.size) is not None


def test_the_match_reads_the_other_way_with_the_piece_first():
    picture = photo()
    piece = half_of(picture)
    match = pieces.cut_from(picture, piece, picture.size, piece.size, piece_first=True)
    assert match is not None and match.size_a == piece.size and match.size_b == picture.size
    assert match.coverage_a == pytest.approx(1.0) and match.coverage_b == pytest.approx(0.25, abs=0.01)


def test_a_piece_of_another_photo_of_the_same_flower_is_not_found():
    picture, piece = photo(), half_of(photo(ANOTHER))
    assert pieces.cut_from(picture, piece, picture.size, piece.size) is None


def test_a_flat_piece_says_nothing_even_where_it_was_cut():
    picture = Image.new("RGB", (128, 128), (120, 160, 220))
    picture.paste(photo().resize((64, 64)), (64, 64))
    sky = picture.crop((0, 0, 60, 60))
    assert pieces.cut_from(picture, sky, picture.size, sky.size) is None


def test_only_a_clearly_smaller_file_can_be_a_piece():
    assert pieces.fits_inside((64, 64), (128, 128))
    assert not pieces.fits_inside((128, 128), (128, 128))  # the same size: not a crop
    assert not pieces.fits_inside((130, 20), (128, 128))  # a side longer
    assert not pieces.fits_inside((1000, 750), (4000, 3000))  # large: its keypoints verify it


def test_a_half_crop_the_embedding_puts_far_is_a_copy_cropped_to_a_quarter(tmp_path):
    """Regression: a half crop of a 128-pixel photo lay beyond the candidates' reach and verified by
    no keypoints; duplicates found 1 of 20 such crops among flowers5's photos."""
    photo().save(tmp_path / "a.png")
    half_of(photo()).save(tmp_path / "b.png")
    items = [store.Item(n, name, 1, 0, f"sha{n}") for n, name in enumerate(("a.png", "b.png"))]
    features = pair_evidence.features_of(tmp_path, items, 10**8)

    def far(row: int) -> tuple[list[int], list[float]]:  # each the other's 3rd nearest, far away
        return [row, 7, 8, 1 - row], [0.0, 1.0, 1.1, 1.3]

    evidence = pair_evidence.Evidence(
        features,
        pictures=pair_evidence.pictures_of(tmp_path, items, 10**8),
        sizes=pair_evidence.sizes_of(tmp_path, items),
        grays=pair_evidence.grays_of(tmp_path, items, 10**8),
    )
    items += [store.Item(n, f"{n}.png", 1, 0, f"sha{n}") for n in range(2, 9)]  # never read
    pairs, _ = copy_pairs.find_pairs(items, far, 0.5, evidence, rows=[0, 1])
    [pair] = pairs
    assert pair.match is not None and pair.match.found_by == "piece" and pair.distance == 1.3
    [group] = grouping.from_pairs(items, pairs, 0.1, tmp_path)
    assert [member.what for member in group.members if member.path == "b.png"] == ["cropped to 25% of it"]


def test_a_refusal_reached_before_pieces_were_looked_for_is_reached_again(tmp_path):
    """A version built before pieces refused the half crop; a build that finds its verdicts came
    before pieces (copies.json "checks" below CHECKS) reaches it again instead of keeping it."""
    photo().save(tmp_path / "a.png")
    half_of(photo()).save(tmp_path / "b.png")
    items = [store.Item(n, name, 1, 0, f"sha{n}") for n, name in enumerate(("a.png", "b.png"))]
    evidence = evidence_in(tmp_path, items)

    def each_other(row: int) -> tuple[list[int], list[float]]:
        return [row, 1 - row], [0.0, 1.3]

    refused = {("sha0", "sha1"): None}
    kept, _ = copy_pairs.find_pairs(items, each_other, 0.5, evidence, refused)
    again, verdicts = copy_pairs.find_pairs(items, each_other, 0.5, evidence, refused, redo_refusals=True)
    assert kept == [] and [(p.a, p.b) for p in again] == [(0, 1)] and verdicts["sha0", "sha1"] is not None


def test_a_version_says_what_its_verdicts_were_reached_with(tmp_path):
    items = [store.Item(0, "a.png", 1, 0, "sha0")]
    assert copy_pairs.checks_of(tmp_path) == 1  # none stored
    copy_pairs.save(tmp_path, [], 0.5, {}, items)
    assert copy_pairs.checks_of(tmp_path) == copy_pairs.CHECKS == 3
