"""The Annoy wrapper and the search command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, quiet_build, write_images
from imgsim.index.vectors import distance_to_score
from imgsim.search import annoy_index


def test_annoy_finds_the_true_nearest_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    annoy_index.build(vectors, tmp_path / "index.ann", "angular", trees=20)
    index = annoy_index.load(tmp_path / "index.ann", 32, "angular")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[7] + 0.05 * rng.normal(size=32).astype(np.float32)
    exact = np.argsort(-(unit @ (query / np.linalg.norm(query))))[:5]
    rows, distances = annoy_index.query(index, query, 5, search_k=10_000)
    assert rows[0] == 7 and rows == exact.tolist()
    assert distances == sorted(distances)


def test_angular_distance_reads_as_cosine_similarity():
    assert distance_to_score(0.0, "angular") == 1.0
    assert distance_to_score(np.sqrt(2.0), "angular") == pytest.approx(0.0)  # orthogonal
    assert distance_to_score(1.0, "angular") == pytest.approx(0.5)  # cos = 1 - d^2 / 2
    assert distance_to_score(1.0, "euclidean") == 0.5


def _run_cli(*args):
    command = [sys.executable, str(ROOT / "ann.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_cli_answers_json_and_plots_each_query(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 8)
    quiet_build(photos, tiny_config)
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "a.png").write_bytes((photos / "img0002.png").read_bytes())
    (queries / "broken.jpg").write_bytes(b"not really a jpeg")
    plots = tmp_path / "plots"
    result = _run_cli(queries, "--k", 3, "--json", "--plot", plots, "--index-dir", tiny_config.index_dir)
    assert result.returncode == 0, result.stderr
    answers = {a["query"].rsplit("/", 1)[1]: a for a in json.loads(result.stdout)}
    assert "not an image" in answers["broken.jpg"]["error"]
    hits = answers["a.png"]["results"]
    assert len(hits) == 3 and hits[0]["path"] == "img0002.png" and hits[0]["distance"] < 1e-3
    assert set(hits[0]) == {"id", "path", "distance", "score", "verified", "match", "likeness"}
    assert hits[0]["match"] == "duplicate"
    assert (plots / "a_results.png").stat().st_size > 1000


def test_cli_and_service_give_the_same_results_and_labels(tmp_path, tiny_config):
    """ann.py --json had no labels at all while the service labelled every result."""
    from helpers import JSON
    from imgsim.index import store
    from imgsim.models import reference, runtimes
    from imgsim.serve import app as app_module

    tiny_config = tiny_config.replace(model_cache=str(tmp_path / "models"))  # its own references
    photos = tmp_path / "photos"
    write_images(photos, 12)
    quiet_build(photos, tiny_config)
    key = store.read_manifest(store.current_version(tiny_config.index_dir)).model_key
    lines = reference.Reference(reference.identity(key), 0.002, 0.01, {"name": "made up"})
    reference.save(lines, runtimes.cache_root(tiny_config.model_cache))
    quiet_build(photos, tiny_config)  # the next build states the model's reference, nothing else changed
    query = tmp_path / "q.png"
    query.write_bytes((photos / "img0005.png").read_bytes())
    result = _run_cli(query, "--k", 6, "--json", "--index-dir", tiny_config.index_dir)
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)
    client = app_module.create_app(tiny_config).test_client()
    reply = client.post("/search?k=6", data=query.read_bytes(), content_type="image/png", headers=JSON)
    served = reply.get_json()["results"]
    assert [(h["id"], h["match"]) for h in answer["results"]] == [(h["id"], h["match"]) for h in served]
    assert [h["likeness"] for h in answer["results"]] == pytest.approx(
        [h["likeness"] for h in served], abs=1e-5
    )
    assert {h["match"] for h in served} <= {"duplicate", "similar", "related", "weak"}
    assert len({h["match"] for h in served}) >= 2


def test_cli_without_an_index_says_how_to_build_one(tmp_path):
    result = _run_cli(tmp_path / "q.jpg", "--index-dir", tmp_path / "empty")
    assert result.returncode == 2
    assert "python img2vec.py FOLDER" in result.stderr and "Traceback" not in result.stderr
