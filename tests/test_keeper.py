"""The copy a duplicate group keeps, by stated rules that are a setting, each group saying why."""

import dataclasses
import os

import pytest
from PIL import Image

from imgsim import config
from imgsim.duplicates import copy_pairs, grouping, keeper
from imgsim.images import geometry
from imgsim.index import store


def _photo(path, size=(80, 60), quality=None):
    image = Image.linear_gradient("L").convert("RGB").resize(size)
    image.save(path, quality=quality) if quality else image.save(path)
    return path


def _item(id, path, sha1, mtime_ns=0):
    return store.Item(id, path, 0, mtime_ns, sha1)


def _pair(a, b, coverage_a=1.0, coverage_b=1.0, a_gray=False):
    match = geometry.Match(40, 0.0, 1.0, [], [], coverage_a, coverage_b)
    return copy_pairs.Pair(a, b, 0.1, copy_pairs.CopyMatch(match, a_gray=a_gray, b_gray=False))


def test_a_lossless_file_is_kept_over_a_jpeg_of_as_many_pixels(tmp_path):
    _photo(tmp_path / "a.jpg", quality=90)
    _photo(tmp_path / "b.png")
    items = [_item(0, "a.jpg", "x", mtime_ns=1), _item(1, "b.png", "y", mtime_ns=2)]
    [group] = grouping.from_pairs(items, [_pair(0, 1)], 0.2, tmp_path)
    assert group.keep == 1 and group.why_kept == "as many pixels, the better file: lossless"


def test_the_colour_original_is_kept_over_a_gray_png_copy_saved_in_three_channels(tmp_path):
    """The gray copy is lossless and as large: kept by the file rule, its colour original then read
    as a mere re-encoding of it. Colour comes before the file, and gray pixels in RGB are gray."""
    _photo(tmp_path / "gray.png")
    _photo(tmp_path / "colour.jpg", quality=90)
    items = [_item(0, "gray.png", "x", mtime_ns=5), _item(1, "colour.jpg", "y", mtime_ns=9)]
    [group] = grouping.from_pairs(items, [_pair(0, 1, a_gray=True)], 0.2, tmp_path)
    assert group.keep == 1 and group.why_kept == "as many pixels, in colour rather than gray"
    [copy] = [m for m in group.members if m.id == 0]
    assert copy.what == "grayscale"


def test_the_jpeg_saved_at_higher_quality_is_kept(tmp_path):
    _photo(tmp_path / "low.jpg", quality=30)
    _photo(tmp_path / "high.jpg", quality=95)
    items = [_item(0, "low.jpg", "x"), _item(1, "high.jpg", "y", mtime_ns=5)]
    [group] = grouping.from_pairs(items, [_pair(0, 1)], 0.2, tmp_path)
    assert group.keep == 1 and group.why_kept.endswith("less compressed")


def test_the_whole_picture_is_kept_over_an_enlarged_crop_of_it(tmp_path):
    _photo(tmp_path / "crop.png")  # as many pixels as the photo, showing 60 % of it
    _photo(tmp_path / "whole.png")
    items = [_item(0, "crop.png", "x"), _item(1, "whole.png", "y", mtime_ns=9)]
    [group] = grouping.from_pairs(items, [_pair(0, 1, coverage_a=1.0, coverage_b=0.6)], 0.2, tmp_path)
    assert group.keep == 1 and group.why_kept.startswith("as many pixels, all of the picture")


def test_the_rules_are_a_setting_in_order(tmp_path):
    _photo(tmp_path / "small-old.png", size=(40, 30))
    _photo(tmp_path / "large-new.png")
    items = [_item(0, "small-old.png", "x", mtime_ns=1), _item(1, "large-new.png", "y", mtime_ns=2)]
    assert grouping.from_pairs(items, [_pair(0, 1)], 0.2, tmp_path)[0].keep == 1  # the most pixels
    cfg = config.load({"IMGSIM_KEEPER_RULES": "oldest,pixels"})
    [group] = grouping.from_pairs(items, [_pair(0, 1)], 0.2, tmp_path, rules=keeper.of(cfg))
    assert (group.keep, group.why_kept) == (0, "the oldest file")


@pytest.mark.parametrize("rules", ["largest", "pixels,pixels", " , "])
def test_unknown_or_repeated_rules_stop_at_start_with_one_sentence(rules):
    with pytest.raises(config.ConfigError, match="keeper_rules are some of unframed, pixels, uncropped"):
        config.load({"IMGSIM_KEEPER_RULES": rules})
    assert "IMGSIM_KEEPER_RULES" not in os.environ


def test_the_service_keeps_by_the_rules_it_is_configured_with(photos, service_config):
    """/duplicates chose by the default rules whatever IMGSIM_KEEPER_RULES said: the setting
    reached the command line only."""
    import shutil

    from helpers import quiet_build
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    shutil.copy(photos / "img0003.png", photos / "img0003-newer.png")
    os.utime(photos / "img0003.png", ns=(1_000_000_000, 1_000_000_000))  # the original: older
    quiet_build(photos, service_config)
    kept = {}
    for rules in ("oldest", "newest"):
        application = app_module.create_app(service_config.replace(keeper_rules=rules))
        groups = application.test_client().get("/duplicates?format=json").get_json()["groups"]
        [group] = [g for g in groups if g["kind"] == "exact"]
        kept[rules] = next(m["path"] for m in group["members"] if m["id"] == group["keep"])
        web.service_of(application).close()
    assert kept == {"oldest": "img0003.png", "newest": "img0003-newer.png"}


def _verified(a, b, coverage_a=1.0, coverage_b=1.0, framed=False, recoloured=False):
    match = geometry.Match(40, 0.0, 1.0, [], [], coverage_a, coverage_b)
    verified = copy_pairs.CopyMatch(match, False, False, agreement=0.97, checked=True, recoloured=recoloured)
    return copy_pairs.Pair(a, b, 0.1, dataclasses.replace(verified, framed=framed))


def test_the_picture_alone_is_kept_over_a_copy_that_holds_it_in_a_frame(tmp_path):
    """Regression: a caption bar or an app's window adds pixels, and the picture alone, which
    fills 70 % of such a copy, was read as a crop of it: the captioned copy was kept (hard copies:
    the captioned copy or the screenshot kept in 40 of 40 groups)."""
    _photo(tmp_path / "photo.jpg", quality=90)
    _photo(tmp_path / "captioned.png", size=(80, 86))
    items = [_item(0, "photo.jpg", "x", mtime_ns=1), _item(1, "captioned.png", "y", mtime_ns=2)]
    pair = _verified(0, 1, coverage_a=1.0, coverage_b=0.7, framed=True)
    [group] = grouping.from_pairs(items, [pair], 0.2, tmp_path)
    assert group.keep == 0 and group.why_kept.startswith("the picture alone")
    [copy] = [m for m in group.members if m.id == 1]
    assert copy.what == "framed (the picture fills 70%)"


def test_a_picture_held_without_a_frame_is_a_crop_of_the_larger_photo(tmp_path):
    _photo(tmp_path / "photo.jpg", quality=90)
    _photo(tmp_path / "crop.png", size=(40, 30))
    items = [_item(0, "photo.jpg", "x", mtime_ns=2), _item(1, "crop.png", "y", mtime_ns=1)]
    [group] = grouping.from_pairs(items, [_verified(0, 1, coverage_a=0.25)], 0.2, tmp_path)
    assert group.keep == 0 and group.why_kept.startswith("the most pixels")


def test_an_edit_saved_as_png_is_not_kept_for_its_format_the_oldest_file_is(tmp_path):
    """Regression: a recoloured (or mirrored, or watermarked) copy saved as PNG was kept over its
    JPEG original as the better file (hard copies: in 79 of 80 such groups)."""
    _photo(tmp_path / "photo.jpg", quality=90)
    _photo(tmp_path / "sepia.png")
    items = [_item(0, "photo.jpg", "x", mtime_ns=1), _item(1, "sepia.png", "y", mtime_ns=2)]
    [group] = grouping.from_pairs(items, [_verified(0, 1, recoloured=True)], 0.2, tmp_path)
    assert (group.keep, group.why_kept) == (0, "as many pixels, the oldest file")
    [unaltered] = grouping.from_pairs(items, [_verified(0, 1)], 0.2, tmp_path)
    assert unaltered.keep == 1 and unaltered.why_kept.endswith(
        "lossless"
    )  # the same picture: the file decides


def test_a_copy_with_something_laid_over_it_says_so_and_is_not_kept_for_its_format(tmp_path):
    _photo(tmp_path / "photo.jpg", quality=90)
    _photo(tmp_path / "watermarked.png")
    items = [_item(0, "photo.jpg", "x", mtime_ns=1), _item(1, "watermarked.png", "y", mtime_ns=2)]
    pair = _verified(0, 1)
    pair = dataclasses.replace(pair, match=dataclasses.replace(pair.match, b_overlaid=True))
    [group] = grouping.from_pairs(items, [pair], 0.2, tmp_path)
    assert (group.keep, group.why_kept) == (0, "as many pixels, the oldest file")
    [copy] = [m for m in group.members if m.id == 1]
    assert copy.what == "with something laid over it (a watermark, a sticker, text)"
