"""Match labels from distances, with thresholds calibrated on the collection itself."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers import search_hits, upload
from imgsim.index import matching
from imgsim.serve import web


def _spread(low, high, count=200):
    return np.linspace(low, high, count)


def test_separated_copies_and_photos_put_the_duplicate_line_between_them():
    found = matching.calibrate(_spread(0.0, 0.3), _spread(0.8, 1.2), _spread(1.1, 1.4))
    assert 0.3 < found.duplicate < 0.8
    assert found.similar == pytest.approx(1.0) and found.related == pytest.approx(1.25)
    assert [matching.label(d, found) for d in (0.05, 0.9, 1.2, 1.3)] == [
        "duplicate",
        "similar",
        "related",
        "weak",
    ]


def test_overlapping_distributions_favour_precision():
    found = matching.calibrate(_spread(0.0, 0.9), _spread(0.6, 1.2), _spread(1.1, 1.4))
    assert found.duplicate <= float(np.percentile(_spread(0.0, 0.9), 95)) + 1e-4
    assert found.duplicate <= float(np.percentile(_spread(0.6, 1.2)[_spread(0.6, 1.2) > 0.855], 1)) + 1e-4


def test_a_model_that_cannot_tell_copies_from_other_photos_calls_only_identical_ones_duplicates():
    nearest = np.concatenate([[0.0, 0.0, 0.0], _spread(0.2, 0.4)])  # others as close as copies
    found = matching.calibrate(_spread(0.0, 1.8), nearest, _spread(1.6, 1.9))
    assert found.duplicate < 0.01 and matching.label(0.05, found) != "duplicate"


def test_an_index_without_thresholds_labels_nothing():
    assert matching.Thresholds.from_dict({}) is None and matching.label(0.1, None) is None


def _noise_png(seed=5) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_results_carry_the_label_their_distance_earns_on_this_index(app, client, photos):
    thresholds = matching.Thresholds.from_dict(web.service_of(app).holder.get().index.manifest.thresholds)
    body = upload(client, (photos / "img0002.png").read_bytes(), query="?k=12").get_json()
    limits = {"duplicate": thresholds.duplicate, "similar": thresholds.similar, "related": thresholds.related}
    for hit in body["results"]:
        expected = next((name for name, limit in limits.items() if hit["distance"] <= limit + 1e-6), "weak")
        assert hit["match"] == expected, (hit, limits)
    legend = body["matches"]  # the same lines as scores, for people
    assert legend["duplicate"] >= legend["similar"] >= legend["related"]
    assert body["results"][0]["match"] == "duplicate"  # the photo itself


def test_min_score_drops_weaker_results_and_bad_values_are_refused(client, photos):
    everything = search_hits(client, (photos / "img0002.png").read_bytes(), k=12)
    cut = everything[5]["score"]
    kept = upload(client, (photos / "img0002.png").read_bytes(), query=f"?k=12&min_score={cut}").get_json()
    assert [h["id"] for h in kept["results"]] == [h["id"] for h in everything if h["score"] >= cut]
    for bad in ("1.5", "-0.1", "nan", "high"):
        reply = upload(client, (photos / "img0002.png").read_bytes(), query=f"?min_score={bad}")
        assert reply.status_code == 400 and reply.get_json()["code"] == "bad_min_score"


def test_the_page_says_when_nothing_similar_was_found(app, client):
    snap = web.service_of(app).holder.get()
    snap.index.manifest.thresholds = {"duplicate": 0.0, "similar": 0.0, "related": 0.0, "evidence": {}}
    body = upload(client, _noise_png()).get_json()
    assert body["nothing_similar"] is True and {h["match"] for h in body["results"]} == {"weak"}
    page = upload(client, _noise_png(), headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'id="nothing-similar"' in page and "Nothing similar found among 12 images" in page
