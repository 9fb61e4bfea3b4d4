"""Bursts apart from copies (issue 36): two shots of one scene, framed apart, are similar shots,
never copies, and the sharpest is suggested to keep."""

import random

from PIL import Image, ImageFilter

from helpers import requires_shared
from imgsim import config
from imgsim.duplicates import copy_pairs, grouping
from imgsim.images import edits, geometry, imaging
from imgsim.index import store
from imgsim.measure import bursts

pytestmark = requires_shared


def _scenes(count: int) -> list[Image.Image]:
    files = sorted(config.SHARED_FLOWERS.rglob("*.jpg"))
    return [Image.open(path).convert("RGB") for path in random.Random(7).sample(files, count)]


def _groups(tmp_path, pictures: dict[str, Image.Image]) -> list[grouping.Group]:
    """The groups of a folder holding ``pictures``, every pair of them a candidate."""
    for name, picture in pictures.items():
        picture.save(tmp_path / name)
    items = [store.Item(n, name, 1, n, f"sha{n}") for n, name in enumerate(pictures)]
    opened = {
        n: imaging.open_rgb(tmp_path / name, 10_000_000, geometry.ANALYSED_SIDE)
        for n, name in enumerate(pictures)
    }
    features = {n: geometry.features(image) for n, image in opened.items()}

    def everyone(row: int) -> tuple[list[int], list[float]]:
        return [row, *(other for other in range(len(items)) if other != row)], [0.0] + [0.1] * (
            len(items) - 1
        )

    pictures_of = copy_pairs.pictures_of(tmp_path, items, 10_000_000)
    pairs, _ = copy_pairs.find_pairs(items, everyone, 0.5, features.get, pictures=pictures_of)
    return grouping.from_pairs(items, pairs, 0.5, tmp_path)


def test_a_burst_is_a_group_of_similar_shots_and_a_copy_a_group_of_copies(tmp_path):
    scene, photo = _scenes(2)
    first, second = bursts.frames(scene, 0)
    found = _groups(
        tmp_path,
        {
            "first.png": first,
            "second.png": second,
            "photo.png": photo,
            "copy.jpg": edits.apply("reencode_q30", photo),
        },
    )
    by_kind = {group.kind: sorted(m.path for m in group.members) for group in found}
    assert by_kind == {"similar": ["first.png", "second.png"], "near": ["copy.jpg", "photo.png"]}
    [shots] = [group for group in found if group.kind == "similar"]
    assert shots.reason.startswith("similar shots")
    assert "another shot of the scene" in next(m.what for m in shots.members if m.id != shots.keep)


def test_the_sharpest_shot_is_suggested_to_keep(tmp_path):
    [scene] = _scenes(1)
    first, second = bursts.frames(scene.resize((scene.width * 2, scene.height * 2)), 1)
    shaken = first.filter(ImageFilter.GaussianBlur(2))
    [shots] = _groups(tmp_path, {"shaken.png": shaken, "sharp.png": second})
    assert shots.kind == "similar"
    assert next(m.path for m in shots.members if m.id == shots.keep) == "sharp.png"
    assert shots.why_kept == "the sharpest shot"
