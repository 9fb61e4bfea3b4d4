"""A small file is looked for in every picture it could be cut out of (images/piece_search.py): a
half crop the embedding puts far from its original is proposed with it, whatever its place."""

from __future__ import annotations

import pytest
from PIL import Image

from helpers import requires_shared
from imgsim import config
from imgsim.duplicates import copy_pairs, pair_evidence
from imgsim.images import imaging, piece_search
from imgsim.index import store

pytestmark = requires_shared
PHOTOS = sorted(config.SHARED_FLOWERS.glob("*/*.jpg"))[:40]  # 128 pixels each
CUT = {3: (17, 41), 11: (50, 5), 29: (33, 63)}  # photo -> where its half was cut: off any grid


@pytest.fixture
def folder(tmp_path):
    """40 flowers and, after them, the halves cut out of three, saved as JPEGs."""
    for n, path in enumerate(PHOTOS):
        imaging.open_rgb(path).save(tmp_path / f"{n:02d}.png")
    for n, (left, top) in CUT.items():
        picture = imaging.open_rgb(PHOTOS[n])
        half = picture.crop((left, top, left + picture.width // 2, top + picture.height // 2))
        half.save(tmp_path / f"half-{n:02d}.jpg", quality=70)
    return tmp_path


def looked_at(folder, rows=None):
    names = sorted(path.name for path in folder.iterdir())
    items = [store.Item(n, name, 1, 0, f"sha{n}") for n, name in enumerate(names)]
    sizes = pair_evidence.sizes_of(folder, items)
    grays = pair_evidence.small_grays_of(folder, items, 10**8)
    return names, piece_search.near_pairs([sizes(row) for row in range(len(items))], grays, rows)


def test_each_half_is_proposed_with_the_photo_it_was_cut_from_first(folder):
    names, found = looked_at(folder)
    assert found is not None
    for n in CUT:
        piece = names.index(f"half-{n:02d}.jpg")
        best = max((score, holder) for (p, holder), score in found.items() if p == piece)
        assert names[best[1]] == f"{n:02d}.png" and best[0] >= 0.9
    assert len(found) <= piece_search.PER_PIECE * len(CUT)  # only the halves are small enough


def row_of(folder, name: str) -> int:
    return sorted(path.name for path in folder.iterdir()).index(name)


def test_a_build_looks_only_at_pairs_with_its_new_rows(folder):
    names, found = looked_at(folder, rows=[row_of(folder, "half-11.jpg")])  # a new piece
    assert found and {names[piece] for piece, _ in found} == {"half-11.jpg"}
    names, found = looked_at(folder, rows=[row_of(folder, "29.png")])  # a new picture
    assert found is not None and {(names[p], names[h]) for p, h in found} == {("half-29.jpg", "29.png")}


def test_a_flat_file_is_proposed_nowhere(folder):
    Image.new("RGB", (64, 64), (120, 160, 220)).save(folder / "sky.png")
    names, found = looked_at(folder)
    assert found is not None and names.index("sky.png") not in {piece for piece, _ in found}


def test_the_sizes_say_what_could_hold_what():
    assert piece_search.could_hold((64, 64), (128, 128))  # a half crop: a quarter of the picture
    assert not piece_search.could_hold((100, 100), (128, 128))  # more than half of it
    assert not piece_search.could_hold((64, 64), (1024, 720))  # a small part: never decoded for it
    assert piece_search.shrink_for((64, 64)) == 4 and piece_search.shrink_for((320, 240)) == 8
    assert piece_search.shrink_for((31, 200)) is None  # too thin to say anything


@pytest.mark.parametrize("bound", ["MAX_PAIRS", "MAX_PICTURES", "MAX_FILES"])
def test_too_much_to_look_at_is_not_looked_at(folder, monkeypatch, bound):
    monkeypatch.setattr(piece_search, bound, 30)  # 3 pieces in 40 pictures, of 43 files
    assert looked_at(folder)[1] is None


def test_a_proposed_piece_is_checked_pixel_for_pixel_and_found_by_piece(folder):
    """Regression: a half crop beyond its original's PIECE_NEAREST nearest (6 of flowers5's 20
    planted ones) was never checked, so never a copy."""
    names = sorted(path.name for path in folder.iterdir())
    items = [store.Item(n, name, 1, 0, f"sha{n:02d}") for n, name in enumerate(names)]
    evidence = pair_evidence.Evidence(
        pair_evidence.features_of(folder, items, 10**8),
        sizes=pair_evidence.sizes_of(folder, items),
        grays=pair_evidence.grays_of(folder, items, 10**8),
    )

    def far(row: int) -> tuple[list[int], list[float]]:  # nobody near anybody
        return [row], [0.0]

    photo, half = names.index("11.png"), names.index("half-11.jpg")
    proposals = copy_pairs.Proposals(pieces={(half, photo): 1.2})
    pairs, _ = copy_pairs.find_pairs(items, far, 0.5, evidence, proposals=proposals)
    [pair] = pairs
    assert {pair.a, pair.b} == {photo, half} and pair.match is not None and pair.match.found_by == "piece"
