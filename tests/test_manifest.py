"""A version's manifest as typed values: measured parts are dataclasses in the code and plain JSON on
disk, written as they always were, and older manifests read into today's types."""

import json

import pytest

from helpers import quiet_build
from imgsim.index import depth, store
from imgsim.index.manifest import Agreement, Manifest, PrecisionRecord
from imgsim.index.matching import Thresholds
from imgsim.index.recall import RecallCurve

BASICS = {
    "model": "m",
    "model_source": "m",
    "model_key": "m:imagenet:299",
    "weights": "imagenet",
    "input_size": 299,
    "embedding_dim": 8,
    "reduce": "none",
    "dims": 8,
    "metric": "angular",
    "trees": 10,
    "items": 3,
    "skipped": 0,
    "next_id": 3,
    "collection_root": "/photos",
}


def test_a_manifest_reads_back_as_it_was_written(photos, tiny_config):
    quiet_build(photos, tiny_config)
    version = store.current_version(tiny_config.index_dir)
    written = json.loads((version / "manifest.json").read_text())
    manifest = store.read_manifest(version)
    assert isinstance(manifest.thresholds, Thresholds) and isinstance(manifest.recall, RecallCurve)
    assert manifest.to_dict() == written


def test_parts_not_measured_are_none_in_the_code_and_empty_objects_on_disk():
    manifest = Manifest.from_dict(BASICS | {"recall": {}, "thresholds": {}, "precision_choice": {}})
    assert (manifest.recall, manifest.thresholds, manifest.precision_choice) == (None, None, None)
    assert manifest.recall_target is None
    on_disk = manifest.to_dict()
    assert (on_disk["recall"], on_disk["thresholds"], on_disk["precision_choice"]) == ({}, {}, {})


def test_an_older_manifest_reads_into_todays_types_and_keeps_unknown_keys():
    measured = {"precision": "bf16", "mean_cosine": 0.99, "min_cosine": 0.9, "top10": 0.95}
    measured |= {"rank1": 1.0, "rank1_f32": 1.0, "seconds": 2.0, "misses": [], "passed": True}
    older = BASICS | {
        "format_version": 1,
        # before references, similar and related were the collection's own quantiles: not kept
        "thresholds": {"duplicate": 0.2, "similar": 0.5, "related": 0.7, "evidence": {}},
        "precision_choice": {"asked": "auto", "how": "measured", "cpu": ["amx"], "measured": [measured]},
        "from_a_later_imgsim": 42,
    }
    manifest = Manifest.from_dict(older)
    assert manifest.thresholds == Thresholds(0.2, None, None, {}, {})
    assert manifest.precision_choice == PrecisionRecord(
        "auto", "measured", ["amx"], [Agreement("bf16", 0.99, 0.9, 0.95, 1.0, 1.0, 2.0)]
    )
    assert manifest.precision_choice.measured[0].passed
    assert manifest.extra == {"from_a_later_imgsim": 42}
    assert manifest.to_dict()["from_a_later_imgsim"] == 42


@pytest.mark.parametrize(
    ("setting", "tuned", "annoy_gets"),
    [
        (-1, 4000, 4000),  # the build's depth
        (-1, 0, 0),  # the build chose exact search
        (0, 4000, 0),  # exact asked for
        (123, 4000, 123),  # a count of nodes
    ],
)
def test_a_search_k_setting_is_a_depth_and_each_segment_turns_it_into_annoys(setting, tuned, annoy_gets):
    assert depth.from_search_k(setting).search_k(tuned) == annoy_gets


def test_a_shallow_search_is_annoys_own_depth_but_stays_exact_where_the_build_chose_exact():
    assert depth.SHALLOW.search_k(tuned=4000) == depth.DEFAULT_SEARCH_K
    assert depth.SHALLOW.search_k(tuned=depth.EXACT_SEARCH_K) == depth.EXACT_SEARCH_K


def test_a_depth_of_no_nodes_is_refused():
    with pytest.raises(ValueError, match="counts nodes"):
        depth.Depth.of(0)
