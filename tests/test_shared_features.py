"""Candidate copies by the local features two pictures share (issue 36): a screenshot, a hue shift
or a watermarked copy, which the embedding puts far from its picture, is still checked against it."""

import numpy as np
from PIL import Image

from helpers import flower_subset, quiet_build, requires_shared
from imgsim import config
from imgsim.duplicates import finding
from imgsim.images import shared_features
from imgsim.measure import hard_copies
from imgsim.search import annoy_index


def _descriptors(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    owners = np.concatenate([np.full(len(found), row) for row, found in enumerate(rows)])
    return np.concatenate(rows), owners


def _random(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32), np.uint8)


def test_two_rows_sharing_descriptors_are_a_pair_with_the_words_they_share():
    shared = _random(12, 0)
    rows = [np.concatenate([shared, _random(50, 1)]), _random(50, 2)]
    rows.append(np.concatenate([shared, _random(50, 3)]))
    assert shared_features.near_pairs(*_descriptors(rows)) == {(0, 2): 12 * 8}


def test_each_row_proposes_only_the_rows_it_shares_most_with():
    """Regression: a row's best were taken once among its pairs with lower rows and once among
    those with higher ones, so a row proposed a pair it shared less with than with its best."""
    assert shared_features.PER_ROW == 2
    words = {pair: _random(count, seed) for seed, (pair, count) in enumerate(SHARING.items())}
    rows = [np.concatenate([found for pair, found in words.items() if row in pair]) for row in range(6)]
    assert set(shared_features.near_pairs(*_descriptors(rows))) == {(0, 1), (0, 2), (3, 4), (3, 5)}


SHARING = {(0, 1): 40, (0, 2): 30, (0, 3): 20, (3, 4): 50, (3, 5): 60}  # (0, 3): third of both


def test_too_few_shared_words_make_no_pair():
    shared = _random(1, 0)  # 8 words: below MIN_SHARED
    rows = [np.concatenate([shared, _random(30, 1)]), np.concatenate([shared, _random(30, 2)])]
    assert shared_features.near_pairs(*_descriptors(rows)) == {}


def test_a_word_that_many_descriptors_share_is_a_stop_word():
    """An app's buttons or a caption's text, the same in every picture, propose nothing."""
    everywhere = _random(2, 0)  # 16 words in each of 70 rows: 70 descriptors share each
    rows = [np.concatenate([everywhere, _random(20, 10 + row)]) for row in range(70)]
    assert shared_features.near_pairs(*_descriptors(rows)) == {}


def test_only_pairs_with_the_rows_asked_for():
    shared, other = _random(12, 0), _random(12, 9)
    rows = [shared, shared.copy(), other, other.copy()]
    assert shared_features.near_pairs(*_descriptors(rows), rows=[3]) == {(2, 3): 96}


def test_a_pair_sharing_exactly_the_least_words_is_a_pair_and_one_fewer_is_not():
    """The words a pair shares are counted over all eight words of every descriptor at once."""
    assert shared_features.MIN_SHARED == 10
    viewed = _random(4, 0).view(np.uint32)  # 4 descriptors: 32 words, each another
    first = viewed.copy()
    second, third = _random(4, 1).view(np.uint32), _random(4, 2).view(np.uint32)
    second.flat[:10] = viewed.flat[:10]  # shares 10 words with the first
    third.flat[:9] = viewed.flat[16:25]  # shares 9
    rows = [found.view(np.uint8) for found in (first, second, third)]
    assert shared_features.near_pairs(*_descriptors(rows)) == {(0, 1): 10}


def test_rows_beyond_what_32_bit_codes_hold_are_paired_alike():
    """A pair's code is its lower row times the rows plus its higher row: in 32 bits up to 65,536
    rows (the codes held in half the memory), in 64 beyond."""
    shared = _random(12, 0)
    descriptors = np.concatenate([shared, _random(30, 1), shared])
    owners = np.concatenate([np.full(12, 3), np.full(30, 5), np.full(12, 70_000)])
    assert shared_features.near_pairs(descriptors, owners) == {(3, 70_000): 96}


@requires_shared
def test_copies_the_embedding_puts_far_are_grouped_with_their_picture(tmp_path):
    """Regression: screenshots inside one app's window, hue shifts and watermarks were missed when
    only the embedding's nearest (and near hashes) were checked."""
    folder = flower_subset(tmp_path / "photos", per_class=8, seed=3)
    originals = sorted(folder.rglob("*.jpg"))[::5][:8]
    made = {}
    for n, original in enumerate(originals):
        kind = ("screenshot", "hue_shift_40", "watermark")[n % 3] if n > 1 else "screenshot"
        copy = original.with_name(f"{original.stem}-{kind}.png")
        hard_copies.KINDS[kind](Image.open(original).convert("RGB")).save(copy)
        made[str(copy.relative_to(folder))] = str(original.relative_to(folder))
    cfg = config.Config(index_dir=tmp_path / "index", model=str(config.SHARED_MODEL), trees=20)
    quiet_build(folder, cfg)
    _, groups = finding.find_duplicates(annoy_index.open_index(cfg.index_dir))
    grouped = {frozenset(m.path for m in group.members) for group in groups}
    assert {frozenset(pair) for pair in made.items()} <= grouped


def test_a_build_with_too_many_descriptors_says_it_did_not_look(monkeypatch):
    from imgsim.indexing import verifying

    class Stored:
        def descriptor_count(self) -> int:
            return 12

        def all_descriptors(self):
            return _descriptors([_random(6, 0), _random(6, 1)])

    said: list[str] = []
    assert verifying._descriptors(Stored(), said.append) is not None and said == []  # type: ignore[arg-type]
    monkeypatch.setattr(shared_features, "MAX_DESCRIPTORS", 11)
    assert verifying._descriptors(Stored(), said.append) is None  # type: ignore[arg-type]
    assert said == [
        "Shared local features not looked at: 12 descriptors, more than 11 "
        "(copies the embedding puts far may be missed)."
    ]
