"""Bursts apart from copies (issue 36): two shots of one scene, framed apart, are similar shots,
never copies, and the sharpest is suggested to keep."""

import random

from PIL import ExifTags, Image, ImageFilter

from helpers import requires_shared
from imgsim import config
from imgsim.duplicates import copy_pairs, grouping, pair_evidence
from imgsim.images import edits, geometry, imaging
from imgsim.index import store
from imgsim.measure import bursts

pytestmark = requires_shared


def _scenes(count: int) -> list[Image.Image]:
    files = sorted(config.SHARED_FLOWERS.rglob("*.jpg"))
    return [Image.open(path).convert("RGB") for path in random.Random(7).sample(files, count)]


def _groups(
    tmp_path, pictures: dict[str, Image.Image], taken: dict[str, str] | None = None
) -> list[grouping.Group]:
    """The groups of a folder holding ``pictures``, every pair of them a candidate; ``taken``: the
    EXIF capture times (with a fraction of a second after a dot) written into some of them."""
    for name, picture in pictures.items():
        picture.save(tmp_path / name, exif=_exif((taken or {}).get(name)))
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

    pictures_of = pair_evidence.pictures_of(tmp_path, items, 10_000_000)
    taken_at = pair_evidence.capture_times_of(tmp_path, items)
    pairs, _ = copy_pairs.find_pairs(
        items, everyone, 0.5, pair_evidence.Evidence(features.get, pictures=pictures_of, taken=taken_at)
    )
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


def _exif(taken: str | None) -> Image.Exif:
    exif = Image.Exif()
    if taken is not None:
        whole, _, fraction = taken.partition(".")
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = whole
        if fraction:
            exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.SubsecTimeOriginal] = fraction
    return exif


def test_two_shots_framed_alike_but_taken_apart_are_similar_shots_not_copies(tmp_path):
    """Regression: from a tripod (or a burst with the camera still) two shots frame the scene
    alike and verified as copies; their cameras' capture times say they are two shots."""
    [scene] = _scenes(1)
    later = scene.point(lambda value: min(255, int(value * 1.06)))  # the light changed a little
    found = _groups(
        tmp_path,
        {"first.jpg": scene, "second.jpg": later, "edited.jpg": scene.copy()},
        taken={"first.jpg": "2026:07:14 10:22:31.25", "second.jpg": "2026:07:14 10:22:33.75"}
        | {"edited.jpg": "2026:07:14 10:22:31"},  # an editor kept the second, not its fraction
    )
    by_kind = {group.kind: sorted(m.path for m in group.members) for group in found}
    assert by_kind == {
        "near": ["edited.jpg", "first.jpg"],
        "similar": ["edited.jpg", "first.jpg", "second.jpg"],
    }
    [shots] = [group for group in found if group.kind == "similar"]
    assert any("taken 2.5 s apart" in m.what for m in shots.members), [m.what for m in shots.members]


def test_a_verdict_from_before_capture_times_were_read_gets_them_without_being_verified_again(tmp_path):
    outline = [(0.0, 0.0), (63.0, 0.0), (63.0, 63.0), (0.0, 63.0)]
    match = geometry.Match(30, 0.0, 1.0, outline, outline, 1.0, 1.0, (64, 64), (64, 64))
    before = copy_pairs.CopyMatch(match, False, False, agreement=0.95, checked=True)
    assert copy_pairs.CopyMatch.from_dict(before.to_dict()) == before and not before.times_read
    for n, taken in enumerate(("2026:07:14 10:22:31", "2026:07:14 10:22:35")):
        Image.new("RGB", (64, 64)).save(tmp_path / f"{n}.jpg", exif=_exif(taken))
    items = [store.Item(n, f"{n}.jpg", 1, n, f"sha{n}") for n in range(2)]

    def never(row: int) -> geometry.Features:
        raise AssertionError("a known match is not verified again")

    pairs, verdicts = copy_pairs.find_pairs(
        items,
        lambda row: ([row, 1 - row], [0.0, 0.1]),
        0.5,
        pair_evidence.Evidence(
            never,
            pictures=pair_evidence.pictures_of(tmp_path, items, 10_000_000),
            taken=pair_evidence.capture_times_of(tmp_path, items),
        ),
        known={("sha0", "sha1"): before},
    )
    [pair] = pairs
    assert pair.match is not None and pair.match.taken_apart == 4.0 and pair.match.shot
    assert copy_pairs.CopyMatch.from_dict(pair.match.to_dict()) == pair.match
