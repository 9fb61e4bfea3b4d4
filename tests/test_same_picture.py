"""A copy agrees with its picture beyond the matched points; different photos inside one app's
window, or under one tiled watermark, match only on what surrounds them and do not (issue 36)."""

import io
import random
from pathlib import Path

import pytest
from PIL import Image

from helpers import requires_shared
from imgsim import config
from imgsim.duplicates import copy_pairs, pair_evidence
from imgsim.images import edits, geometry, imaging, same_picture
from imgsim.index import store
from imgsim.measure import hard_copies

pytestmark = requires_shared

# the kinds of copy and the earlier ones, each with its original; "photo" is the original
KINDS = {
    "reencode_q30": lambda photo: edits.apply("reencode_q30", photo),
    "resize_50": lambda photo: edits.apply("resize_50", photo),
    "crop_85": lambda photo: edits.apply("crop_85", photo),
    "rotate_90": lambda photo: edits.apply("rotate_90", photo),
    "grayscale": lambda photo: edits.apply("grayscale", photo),
    **{name: hard_copies.KINDS[name] for name in ("hue_shift_40", "sepia", "caption", "screenshot")},
}


def _photos(count: int, seed: int = 0) -> list[Image.Image]:
    files = sorted(config.SHARED_FLOWERS.rglob("*.jpg"))
    return [imaging.open_rgb(path) for path in random.Random(seed).sample(files, count)]


# photos whose screenshots, and whose watermarked copies, verified with each other in
# bench/hard_copies.py (wrong pairs before the agreement was checked)
SCREENSHOTS = [
    ("tulip/13514136074_ab1b827e4f.jpg", "daisy/8694909523_3ca25d449d_n.jpg"),
    ("dandelion/4708723476_a1b476a373.jpg", "daisy/8694909523_3ca25d449d_n.jpg"),
    ("sunflower/3815322974_52c12dbde3.jpg", "daisy/8694909523_3ca25d449d_n.jpg"),
]
WATERMARKED = [
    ("dandelion/34537877932_f9a3476a4d_n.jpg", "sunflower/5018120483_cc0421b176_m.jpg"),
    ("dandelion/34537877932_f9a3476a4d_n.jpg", "rose/14166797345_d2ab9da518.jpg"),
    ("dandelion/34537877932_f9a3476a4d_n.jpg", "dandelion/34578947551_863af3acb3_n.jpg"),
    ("rose/14166797345_d2ab9da518.jpg", "dandelion/34578947551_863af3acb3_n.jpg"),
    ("tulip/14254839301_ffb19c6445_n.jpg", "tulip/14253178581_4dfcedb4d3_n.jpg"),
]

# a screenshot of the first, searched for, verified against the screenshots of the others (its
# matched points on the window alone: 34-48 inliers, agreement 0.22-0.45)
SEARCHED_SCREENSHOTS = [
    "tulip/3510294699_bc4c72cb7d_n.jpg",
    "daisy/34293312980_5f6c492c52_n.jpg",
    "daisy/4727955343_0bb23ac4ae.jpg",
    "rose/172311368_49412f881b.jpg",
    "daisy/2619413565_61a6cd3ac9_m.jpg",
    "tulip/21055041762_5d0a066948_n.jpg",
]


def _flower(name: str) -> Image.Image:
    return imaging.open_rgb(config.SHARED_FLOWERS / name)


def _as_built(image: Image.Image, folder: Path, name: str) -> Image.Image:
    """The image as a build reads it: saved, then opened at the size its features are found at."""
    image.save(folder / f"{name}.png")
    return imaging.open_rgb(folder / f"{name}.png", 10_000_000, geometry.ANALYSED_SIDE)


def _checked(a: Image.Image, b: Image.Image, folder: Path) -> tuple[geometry.Match | None, float | None]:
    a, b = _as_built(a, folder, "a"), _as_built(b, folder, "b")
    match = geometry.verify(geometry.features(a), geometry.features(b))
    return match, same_picture.agreement(a, b, match) if match is not None else None


@pytest.mark.parametrize("kind", KINDS)
def test_a_copy_agrees_with_its_picture_beyond_the_matched_points(kind, tmp_path):
    shares = []
    for photo in _photos(8, seed=1):
        match, share = _checked(KINDS[kind](photo), photo, tmp_path)
        if match is not None:  # what geometry verifies (test_geometry.py pins how often)
            shares.append(share)
    assert len(shares) >= 6, f"{kind}: only {len(shares)} of 8 verified"
    assert all(share is not None and share >= same_picture.MIN_AGREEMENT for share in shares), (kind, shares)


@pytest.mark.parametrize(
    ("kind", "laid_over"), [("watermark", True), ("reencode_q30", False), ("caption", False)]
)
def test_the_copy_with_something_laid_over_its_picture_is_the_side_that_agrees_less(kind, laid_over):
    """A watermark's text is among the copy's own places and nowhere in its picture: from the
    copy's side the two agree less than from the picture's (a caption bar lies outside it)."""
    edit = hard_copies.KINDS.get(kind) or (lambda photo: edits.apply(kind, photo))
    told = []
    for photo in _photos(8, seed=3):
        copy = edit(photo)
        match = geometry.verify(geometry.features(photo), geometry.features(copy))
        if match is not None:
            told.append(same_picture.overlaid(same_picture.sides(photo, copy, match)))
    assert len(told) >= 6, told
    assert told == [1] * len(told) if laid_over else not any(side is not None for side in told), told


def test_a_mirrored_copy_agrees_through_its_mirrored_match():
    for photo in _photos(6, seed=2):
        mirrored = hard_copies.KINDS["mirrored"](photo)
        match = geometry.verify_mirrored(geometry.mirrored_features(mirrored), geometry.features(photo))
        assert match is not None and match.mirrored
        share = same_picture.agreement(mirrored, photo, match)
        assert share is not None and share >= same_picture.MIN_AGREEMENT, share


@pytest.mark.parametrize(("first", "second"), SCREENSHOTS)
def test_two_screenshots_of_one_viewer_match_on_its_window_but_do_not_agree(first, second, tmp_path):
    match, share = _checked(*(hard_copies.screenshot(_flower(name)) for name in (first, second)), tmp_path)
    assert match is not None  # the title bar, buttons and status line verify as one picture
    assert share is not None and share < same_picture.MIN_AGREEMENT, share


@pytest.mark.parametrize(("first", "second"), WATERMARKED)
def test_different_photos_under_one_watermark_match_on_its_text_but_do_not_agree(first, second, tmp_path):
    match, share = _checked(*(hard_copies.watermark(_flower(name)) for name in (first, second)), tmp_path)
    assert match is not None  # the tiled text lies at the same places
    assert share is not None and share < same_picture.MIN_AGREEMENT, share


def test_a_pair_that_matches_only_on_the_window_around_it_is_refused_and_no_longer_a_copy(tmp_path):
    """Regression: the build verified screenshots of different photos as copies of each other, and
    their groups chained every screenshot with its original (38 photos in one group)."""
    paths = []
    for number, photo in enumerate(_flower(name) for name in SCREENSHOTS[0]):
        paths.append(tmp_path / f"shot{number}.png")
        hard_copies.screenshot(photo).save(paths[-1])
    items = [store.Item(n, path.name, 1, 0, f"sha{n}") for n, path in enumerate(paths)]
    features = {
        n: geometry.features(_as_built(Image.open(path), tmp_path, path.stem)) for n, path in enumerate(paths)
    }

    def each_other(row: int) -> tuple[list[int], list[float]]:
        return [row, 1 - row], [0.0, 0.1]

    pictures = pair_evidence.pictures_of(tmp_path, items, 10_000_000)
    pairs, verdicts = copy_pairs.find_pairs(
        items, each_other, 0.5, pair_evidence.Evidence(features.get, pictures=pictures)
    )
    assert pairs == [] and verdicts == {("sha0", "sha1"): None}
    # a verdict stored before the agreement was checked is checked again, not taken as it stands
    unchecked, _ = copy_pairs.find_pairs(items, each_other, 0.5, pair_evidence.Evidence(features.get))
    [old] = unchecked
    assert old.match is not None and not old.match.checked
    redone, _ = copy_pairs.find_pairs(
        items,
        each_other,
        0.5,
        pair_evidence.Evidence(features.get, pictures=pictures),
        {("sha0", "sha1"): old.match},
    )
    assert redone == []


def test_a_checked_verdict_keeps_its_agreement_through_copies_json():
    match = geometry.Match(30, 0.0, 1.0, [(0, 0), (9, 0), (9, 9)], [(0, 0), (9, 0), (9, 9)], 1.0, 1.0)
    checked = copy_pairs.CopyMatch(match, False, False, agreement=0.912, checked=True)
    assert copy_pairs.CopyMatch.from_dict(checked.to_dict()) == checked
    assert (
        copy_pairs.CopyMatch.from_dict(copy_pairs.CopyMatch(match, False, False).to_dict()).checked is False
    )


def test_the_next_build_checks_again_the_rows_of_pairs_verified_before_the_check(tmp_path):
    from imgsim.indexing import verifying

    match = geometry.Match(30, 0.0, 1.0, [(0, 0), (9, 0), (9, 9)], [(0, 0), (9, 0), (9, 9)], 1.0, 1.0)
    old_items = [store.Item(n, f"{n}.png", 1, 0, f"sha{n}") for n in range(5)]
    pairs = [
        copy_pairs.Pair(0, 1, 0.1, copy_pairs.CopyMatch(match, False, False)),  # before the check
        copy_pairs.Pair(2, 3, 0.1, copy_pairs.CopyMatch(match, False, False, agreement=0.9, checked=True)),
    ]
    copy_pairs.save(tmp_path, pairs, 0.5, {}, old_items)
    rows = {4: 0, 3: 1, 2: 2, 1: 3, 0: 4}  # the same items (ids) at other rows
    stored = copy_pairs.load(tmp_path)
    assert stored is not None
    assert verifying.unchecked_rows(stored[1], old_items, rows) == [3, 4]
    assert verifying.carried_pairs(stored[1], old_items, rows, [3, 4]) == [
        copy_pairs.Pair(2, 1, 0.1, pairs[1].match)
    ]


def test_a_search_never_calls_a_screenshot_of_another_photo_the_same_picture(tmp_path):
    """Regression: searches verified candidates by their matched points alone, so a screenshot
    upload was a `duplicate` of another photo's screenshot in the same viewer's window; its own
    picture is still found first and verified."""
    from helpers import flower_subset, quiet_build, search_hits
    from imgsim.serve import app as app_module

    folder = flower_subset(tmp_path / "photos", per_class=4, seed=5)
    (folder / "shots").mkdir()
    for number, name in enumerate(SEARCHED_SCREENSHOTS[1:]):
        hard_copies.screenshot(_flower(name)).save(folder / "shots" / f"other-photo-{number}.png")
    mine = SEARCHED_SCREENSHOTS[0]
    _flower(mine).save(folder / "shots" / "mine.png")
    cfg = config.Config(index_dir=tmp_path / "index", model=str(config.SHARED_MODEL), trees=20)
    quiet_build(folder, cfg)
    client = app_module.create_app(cfg).test_client()
    buffer = io.BytesIO()
    hard_copies.screenshot(_flower(mine)).save(buffer, "PNG")
    hits = search_hits(client, buffer.getvalue(), k=10)
    verified = [hit["path"] for hit in hits if hit["verified"]]
    assert verified == ["shots/mine.png"], [(h["path"], h["match"]) for h in hits]


def _agreeing(share: float) -> copy_pairs.CopyMatch:
    outline = [(0.0, 0.0), (63.0, 0.0), (63.0, 63.0), (0.0, 63.0)]
    match = geometry.Match(30, 0.0, 1.0, outline, outline, 1.0, 1.0, (64, 64), (64, 64))
    return copy_pairs.CopyMatch(match, False, False, agreement=share, checked=True)


def test_one_doubtful_pair_never_chains_two_groups_but_may_join_a_picture_to_one(tmp_path):
    """Regression: two screenshots of different low-detail photos agreed at 0.82 and chained both
    photos and both screenshots into one group (bench/hard_copies.py)."""
    from imgsim.duplicates import grouping

    for n in range(5):
        Image.new("RGB", (64, 64), (40 * n, 90, 200)).save(tmp_path / f"{n}.png")
    items = [store.Item(n, f"{n}.png", 1, 0, f"sha{n}") for n in range(5)]
    pairs = [
        copy_pairs.Pair(0, 1, 0.1, _agreeing(1.0)),  # a photo and its screenshot
        copy_pairs.Pair(2, 3, 0.1, _agreeing(1.0)),  # another photo and its screenshot
        copy_pairs.Pair(1, 3, 0.1, _agreeing(0.82)),  # the two screenshots, on the window alone
        copy_pairs.Pair(3, 4, 0.1, _agreeing(0.76)),  # a watermarked copy of the second photo
    ]
    groups = grouping.from_pairs(items, pairs, 0.5, tmp_path)
    assert sorted(sorted(m.path for m in group.members) for group in groups) == [
        ["0.png", "1.png"],
        ["2.png", "3.png", "4.png"],
    ]
