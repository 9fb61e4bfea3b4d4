"""Search depth tuned to a recall target: the cheapest depth that reaches it, else exact search."""

import numpy as np
import pytest

from bench.common import clustered
from helpers import quiet_build
from imgsim.index import recall
from imgsim.index.depth import EXACT_SEARCH_K as EXACT
from imgsim.index.recall import RecallPoint
from imgsim.search import annoy_index


def _points(*triples):
    return [RecallPoint(search_k, rate, ms) for search_k, rate, ms in triples]


def test_the_cheapest_depth_that_reaches_the_target_is_chosen():
    points = _points((1000, 0.90, 0.1), (2000, 0.97, 0.2), (4000, 0.99, 0.3), (8000, 1.0, 0.5))
    assert recall.choose(points, exact_ms=1.0, target=0.98).search_k == 4000
    assert recall.choose(points, exact_ms=1.0, target=0.95).search_k == 2000


def test_exact_search_is_chosen_where_annoy_would_cost_more_to_reach_the_target():
    points = _points((1000, 0.90, 0.1), (2000, 0.97, 0.2), (4000, 0.99, 0.3))
    chosen = recall.choose(points, exact_ms=0.25, target=0.98)
    assert (chosen.search_k, chosen.recall, chosen.ms) == (EXACT, 1.0, 0.25)
    assert recall.choose(points, exact_ms=1.0, target=1.0).search_k == EXACT  # never reached


def test_the_depth_is_refined_between_the_doubling_short_of_the_target_and_the_one_past_it(tmp_path):
    """Doubling alone chose up to twice the depth needed: 32,000 where 28,000 reached the target
    in a segment of 250,000 (docs/scaling.md)."""
    vectors = clustered(3000, 32, seed=3)
    queries = vectors[::30] + np.random.default_rng(4).normal(0, 0.3, (100, 32)).astype(np.float32)
    annoy_index.build(vectors, tmp_path / "index.ann", "angular", trees=10)
    annoy = annoy_index.load(tmp_path / "index.ann", 32)
    truth, _ = recall.exact_top(vectors, queries, 10, "angular")
    found = recall._between(annoy, queries, truth, 10, 0.95, short=400, enough=800)
    assert len(found) == recall.REFINE and found[0].search_k == 600
    second = 500 if found[0].recall >= 0.95 else 700  # the half of the gap where the target lies
    assert found[1].search_k == second


def test_a_measured_curve_keeps_its_promise_on_the_queries_it_was_measured_with(tmp_path):
    vectors = clustered(3000, 32, seed=3)
    queries = vectors[::30] + np.random.default_rng(4).normal(0, 0.3, (100, 32)).astype(np.float32)
    annoy_index.build(vectors, tmp_path / "index.ann", "angular", trees=10)
    curve = recall.calibrate(annoy_index.load(tmp_path / "index.ann", 32), vectors, queries, 0.95, trees=10)

    depths = [p.search_k for p in curve.points]
    first = next((n for n, p in enumerate(curve.points) if p.recall >= 0.95), len(depths) - 1)
    doubled, between = depths[: first + 1], depths[first + 1 :]
    assert doubled[0] == 10 * 10 and all(b == 2 * a for a, b in zip(doubled, doubled[1:], strict=False))
    assert all(doubled[-2] < depth < doubled[-1] for depth in between)  # refined after the doubling
    if curve.search_k == EXACT:  # no depth reached the target in less time than exact search
        assert not [p for p in curve.points if p.recall >= 0.95 and p.ms <= curve.exact_ms]
    else:
        assert curve.recall >= 0.95 and curve.ms <= curve.exact_ms
        assert all(
            p.recall < 0.95 or p.ms > curve.exact_ms for p in curve.points if p.search_k < curve.search_k
        )
    assert recall.RecallCurve.from_dict(curve.to_dict()) == curve


def test_exact_search_answers_as_the_brute_force_ranking(tmp_path, photos, tiny_config):
    quiet_build(photos, tiny_config)
    index = annoy_index.open_index(tiny_config.index_dir)
    index.manifest.search_k = EXACT
    query = index.stored_vector(3) + 0.05
    rows, distances = index.nearest_rows(query, 5)
    matrix = index.stored_vectors()
    cosines = matrix @ query / np.linalg.norm(matrix, axis=1) / np.linalg.norm(query)
    assert rows == np.argsort(-cosines, kind="stable")[:5].tolist()
    assert distances == pytest.approx(np.sqrt(2 - 2 * cosines[rows]).tolist(), abs=1e-5)
