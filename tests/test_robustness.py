"""With a real pretrained model: edited copies of a photo still find it, at the chosen defaults.

The defaults (GeM pooling, border trimming, centring) against the settings before them (average
pooling, no trimming, no centring) on the same fixed 200 flowers, each edit of 30 of them searched
as an upload. docs/benchmarks.md section 9 has the whole collection; this pins the direction.
"""

import pytest

from helpers import flower_subset, quiet_build, requires_shared
from imgsim import config
from imgsim.measure import scoring
from imgsim.models import embedders, runtimes
from imgsim.search import annoy_index

pytestmark = pytest.mark.slow  # edited copies of flowers5 through the shared model

BEFORE = {"pooling": "avg", "trim_borders": False, "centre": "none"}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Rank-1 and top-10 per edit, and class retrieval, before and with the defaults (and tta)."""
    tmp = tmp_path_factory.mktemp("robust")
    photos = flower_subset(tmp / "flowers", per_class=40)
    results = {}
    for name, settings in (("before", BEFORE), ("defaults", {})):
        cfg = config.Config(index_dir=tmp / name, model=str(config.SHARED_MODEL), trees=50, **settings)
        quiet_build(photos, cfg)
        index = annoy_index.open_index(cfg.index_dir)
        embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
        results[name] = scoring.evaluate_index(index) | scoring.evaluate_edits(index, embedder, 30)
        if name == "defaults":
            results["tta"] = scoring.evaluate_edits(index, embedder, 30, mode="rotations")
    for name, scores in results.items():
        rank1 = " ".join(f"{edit} {found['rank1']:.2f}" for edit, found in scores["edits"].items())
        print(f"{name}: P@10 {scores.get('p@10', 0):.3f} mAP {scores.get('map', 0):.3f} | {rank1}")
    return results


def _rank1(scores, edit):
    return scores["edits"][edit]["rank1"]


@requires_shared
def test_plain_edits_find_the_original_first(measured):
    for edit in ("reencode_q30", "resize_50", "flip", "brighter_40"):
        assert _rank1(measured["defaults"], edit) >= 0.95, edit


@requires_shared
def test_trimming_finds_bordered_copies_that_average_pooling_missed(measured):
    for edit in ("border_10", "border_20"):
        assert _rank1(measured["defaults"], edit) >= 0.95, edit
        assert _rank1(measured["defaults"], edit) > _rank1(measured["before"], edit), edit


@requires_shared
def test_the_defaults_keep_class_retrieval(measured):
    before, now = measured["before"], measured["defaults"]
    assert now["p@10"] >= before["p@10"] - 0.01 and now["map"] >= before["map"] - 0.01


@requires_shared
def test_searching_turned_finds_turned_copies_and_costs_the_others_nothing_much(measured):
    plain, turned = measured["defaults"], measured["tta"]
    assert _rank1(turned, "rotate_90") >= 0.95 and _rank1(turned, "rotate_90") >= _rank1(plain, "rotate_90")
    for edit in plain["edits"]:
        assert _rank1(turned, edit) >= _rank1(plain, edit) - 0.05, edit
