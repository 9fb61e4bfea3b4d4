"""Match labels: ``duplicate`` is a verified copy; ``similar`` and ``related`` come from a reference
measured once per model on labelled photos, never from the collection ranking itself."""

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from helpers import requires_shared, upload
from imgsim import config
from imgsim.index import matching, migrate
from imgsim.index.model_key import ModelKey
from imgsim.models import reference, runtimes
from imgsim.serve import web

LITE0_KEY = ModelKey.parse("file:efficientnet_lite0_imagenet.keras:57a2902e35d1:0|gem,trim")


def _spread(low, high, count=200):
    return np.linspace(low, high, count)


def _with_reference(similar=0.2, related=0.4) -> matching.Thresholds:
    measured = reference.Reference("m", similar, related, {"name": "labelled", "photos": 10, "classes": 2})
    return matching.Thresholds(0.5).with_reference(measured)


def test_separated_copies_and_photos_put_the_duplicate_line_between_them():
    found = matching.calibrate(_spread(0.0, 0.3), _spread(0.8, 1.2), _spread(1.1, 1.4))
    assert 0.3 < found.duplicate < 0.8
    assert found.similar is None and found.related is None  # not the collection's to say


def test_overlapping_distributions_favour_precision():
    found = matching.calibrate(_spread(0.0, 0.9), _spread(0.6, 1.2), _spread(1.1, 1.4))
    assert found.duplicate <= float(np.percentile(_spread(0.0, 0.9), 95)) + 1e-4
    assert found.duplicate <= float(np.percentile(_spread(0.6, 1.2)[_spread(0.6, 1.2) > 0.855], 1)) + 1e-4


def test_a_model_that_cannot_tell_copies_from_other_photos_looks_for_copies_only_among_identical_ones():
    nearest = np.concatenate([[0.0, 0.0, 0.0], _spread(0.2, 0.4)])  # others as close as copies
    found = matching.calibrate(_spread(0.0, 1.8), nearest, _spread(1.6, 1.9))
    assert found.duplicate < 0.01


def test_duplicate_means_verified_and_the_other_words_come_from_the_reference():
    lines = _with_reference(similar=0.2, related=0.4)
    assert matching.word(0.9, True, lines) == "duplicate"  # a verified copy, however far
    assert [matching.word(d, False, lines) for d in (0.0, 0.2, 0.3, 0.41)] == [
        "similar",
        "similar",
        "related",
        "weak",
    ]


def test_without_a_reference_only_verified_copies_are_labelled():
    lines = matching.Thresholds(0.5)
    assert matching.word(0.0, False, lines) is None and matching.word(0.0, True, lines) == "duplicate"
    assert matching.word(0.1, False, None) is None


def test_a_version_built_before_references_keeps_no_collection_quantiles():
    old = {"duplicate": 0.6, "similar": 0.96, "related": 1.07, "evidence": {}}  # the median-neighbour lines
    found = matching.Thresholds.from_dict(migrate.manifest({"thresholds": old})["thresholds"])
    assert found.duplicate == 0.6 and found.similar is None and matching.word(0.5, False, found) is None


def _clusters(seed=0, per=60, classes=4, spread=0.35):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 32))
    vectors = np.concatenate([c + spread * rng.normal(size=(per, 32)) for c in centres])
    return vectors.astype(np.float32), [str(n) for n in range(classes) for _ in range(per)]


def test_a_reference_puts_similar_where_pairs_are_ten_times_likelier_of_one_class():
    vectors, labels = _clusters()
    found = reference.measure(ModelKey("m:w:1", precision="bf16"), vectors, labels, "clusters")
    assert found.model == "m:w:1" and 0 < found.similar <= found.related  # the precision is not part of it
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    upper = np.triu_indices(len(vectors), 1)
    distances, same = 1 - (unit @ unit.T)[upper], np.array(labels)[upper[0]] == np.array(labels)[upper[1]]
    below = distances <= found.similar
    assert below[same].mean() >= reference.SIMILAR_ODDS * below[~same].mean()
    assert reference.measure(ModelKey("m:w:1"), vectors, labels, "clusters") == found  # deterministic


def test_a_reference_needs_enough_labelled_photos():
    vectors, labels = _clusters(per=20)
    with pytest.raises(ValueError, match="at least 100 labelled photos"):
        reference.measure(ModelKey("m:w:1"), vectors[:80], labels[:80], "few")


def test_a_reference_measured_here_is_found_before_the_shipped_one(tmp_path):
    assert reference.find(LITE0_KEY.at("bf16"), tmp_path) is not None  # shipped, whatever the precision
    never_measured = ModelKey("inception_v3:imagenet:299", "gem", True)
    assert reference.find(never_measured, tmp_path) is None
    vectors, labels = _clusters()
    mine = reference.measure(LITE0_KEY, vectors, labels, "mine")
    reference.save(mine, tmp_path)
    assert reference.find(LITE0_KEY, tmp_path).measured_on["name"] == "mine"
    assert str(LITE0_KEY) in json.loads((tmp_path / "references.json").read_text())


def test_the_shared_model_with_regional_pooling_has_a_shipped_reference_without_similar(tmp_path):
    """Measured on flowers5 like the GeM one (docs/benchmarks.md section 23): no distance of the
    regions' vectors makes a pair ten times likelier of one class, so nothing is labelled similar
    but what is identical; related stands."""
    regional = dataclasses.replace(LITE0_KEY, pooling="regional")
    found = reference.find(regional.at("bf16"), tmp_path)
    assert found is not None and found.measured_on["name"] == "flowers5"
    assert found.similar == 0.0 and 0.3 < found.related < 0.45


def _noise_png(seed=5) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_model_without_a_reference_labels_only_the_verified_copy(client, photos):
    body = upload(client, (photos / "img0002.png").read_bytes(), query="?k=12").get_json()
    assert body["results"][0]["match"] == "duplicate"  # the photo itself
    assert {hit["match"] for hit in body["results"][1:]} <= {None, "duplicate"}
    assert body["matches"] is None


def test_results_carry_their_likeness_and_the_word_the_reference_gives_it(app, client, photos):
    snap = web.service_of(app).holder.get()
    snap.index.manifest.thresholds = _with_reference(0.05, 0.3)
    body = upload(client, (photos / "img0002.png").read_bytes(), query="?k=12").get_json()
    for hit in body["results"][1:]:
        assert 0 <= hit["likeness"] <= 2
        assert hit["match"] == (
            "duplicate"
            if hit["verified"]
            else matching.word(hit["likeness"], False, _with_reference(0.05, 0.3))
        )
    assert body["matches"]["similar"] == pytest.approx(0.95) and "labelled" in body["matches"]["reference"]


def test_the_page_says_when_nothing_similar_was_found(app, client):
    snap = web.service_of(app).holder.get()
    snap.index.manifest.thresholds = _with_reference(0.0, 0.0)
    body = upload(client, _noise_png()).get_json()
    assert body["nothing_similar"] is True and {h["match"] for h in body["results"]} == {"weak"}
    page = upload(client, _noise_png(), headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'id="nothing-similar"' in page and "Nothing similar found among 12 images" in page


@requires_shared
def test_on_the_sample_photos_no_different_subject_is_similar_and_the_chessboards_are_one_picture(tmp_path):
    from helpers import quiet_build
    from imgsim.indexing import collection
    from imgsim.serve import app as app_module

    folder = collection.export_sample_images(tmp_path / "samples")
    cfg = config.Config(index_dir=tmp_path / "index", model=str(config.SHARED_MODEL), trees=10)
    quiet_build(folder, cfg)
    client = app_module.create_app(cfg).test_client()
    assert (
        reference.find(
            web.service_of(client.application).holder.get().index.manifest.model_key, runtimes.cache_root("")
        )
        is not None
    )
    same_subject = {
        frozenset({"chessboard_RGB.png", "chessboard_GRAY.png"}),
        frozenset({"motorcycle_left.png", "motorcycle_right.png"}),
    }
    labelled = {}
    for photo in sorted(folder.iterdir()):
        if photo.name == "multipage_rgb.tif":
            continue
        reply = upload(client, photo.read_bytes(), query="?k=4", name=photo.name)
        if reply.status_code != 200:
            continue
        for hit in reply.get_json()["results"]:
            if hit["path"] != photo.name:
                labelled[frozenset({photo.name, hit["path"]})] = hit["match"]
    strong = {pair for pair, word in labelled.items() if word in ("similar", "duplicate")}
    assert strong <= same_subject, strong - same_subject
    assert labelled[frozenset({"chessboard_RGB.png", "chessboard_GRAY.png"})] == "duplicate"
    assert labelled[frozenset({"astronaut.png", "motorcycle_left.png"})] == "weak"  # the case
