"""The quality metrics of evaluate.py on hand-made examples with known answers."""

import json

import numpy as np
import pytest

from helpers import write_images
from imgsim.cli import evaluate as evaluate_cli
from imgsim.index.manifest import Manifest
from imgsim.measure import scoring


def test_precision_at_k_counts_results_of_the_query_class():
    retrieved = ["cat", "dog", "cat", "cat", "bird"]
    assert scoring.precision_at_k(retrieved, "cat", 1) == 1.0
    assert scoring.precision_at_k(retrieved, "cat", 2) == 0.5
    assert scoring.precision_at_k(retrieved, "cat", 5) == 0.6
    assert scoring.precision_at_k(retrieved, "dog", 1) == 0.0


def test_average_precision_of_known_rankings():
    assert scoring.average_precision(np.array([1, 1, 0, 0])) == 1.0
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert scoring.average_precision(np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    # relevant at ranks 2 and 4: (1/2 + 2/4) / 2
    assert scoring.average_precision(np.array([0, 1, 0, 1])) == pytest.approx(0.5)
    assert scoring.average_precision(np.array([0, 0, 0])) == 0.0


def test_recall_against_exact_ignores_order():
    assert scoring.recall_against_exact([3, 2, 1], [1, 2, 3]) == 1.0
    assert scoring.recall_against_exact([1, 9, 8, 7], [1, 2, 3, 4]) == 0.25


def test_leave_one_out_on_a_tiny_labelled_index(tmp_path):
    """Two well separated classes of 3 vectors each: every metric is perfect."""
    from imgsim.index import store
    from imgsim.search import annoy_index

    vectors = np.array(
        [[1, 0.0, 0], [1, 0.1, 0], [1, 0, 0.1], [0, 1, 0.0], [0.1, 1, 0], [0, 1, 0.1]], dtype=np.float32
    )
    annoy_index.build(vectors, tmp_path / "index.ann", "angular", trees=5)
    index = annoy_index.SearchIndex(
        version=tmp_path,
        manifest=Manifest("m", "m", "m:0", "none", 0, 3, "none", 3, "angular", 5, 6, 0, 6, str(tmp_path)),
        items=[store.Item(i, f"{'ab'[i // 3]}/{i}.jpg", 0, 0, "") for i in range(6)],
        annoy=annoy_index.OneFile(annoy_index.load(tmp_path / "index.ann", 3), trees=5),
        reducer=None,
    )
    scores = scoring.evaluate_index(index, k=2)
    assert scores["p@1"] == 1.0 and scores["map"] == 1.0 and scores["recall@10"] == 1.0
    assert scores["p@5"] == pytest.approx(2 / 5)  # only 2 others of the class exist among 5 asked


def test_json_mode_prints_only_json_on_stdout(tmp_path, tiny_model, monkeypatch, capsys):
    write_images(tmp_path / "labelled" / "red", 6, seed=1)
    write_images(tmp_path / "labelled" / "blue", 6, seed=2)
    monkeypatch.setenv("IMGSIM_IMAGE_SIZE", "32")
    argv = [str(tmp_path / "labelled"), "--json", "--model", tiny_model, "--trees", "5"]
    code = evaluate_cli.main(
        [*argv, "--reduce", "autoencoder", "--dims", "4", "--epochs", "1"]
        + ["--index-dir", str(tmp_path / "index")]
    )
    out, err = capsys.readouterr()
    assert code == 0
    scores = json.loads(out)  # the whole of stdout is one JSON document
    assert scores["items"] == 12
    assert "Writing segment" in err


def test_edited_copies_are_searched_as_uploads_and_reported_per_edit(tmp_path, tiny_model, capsys):
    from imgsim.images import edits

    write_images(tmp_path / "labelled" / "red", 6, seed=1)
    write_images(tmp_path / "labelled" / "blue", 6, seed=2)
    argv = [str(tmp_path / "labelled"), "--model", tiny_model, "--image-size", "32", "--trees", "5"]
    argv += ["--index-dir", str(tmp_path / "index")]
    code = evaluate_cli.main([*argv, "--edited", "3", "--tta", "rotations"])
    out, _ = capsys.readouterr()
    assert code == 0 and "Edited copies of 3 images searched as uploads (tta rotations)" in out
    for name in edits.EDITS:
        assert f"  {name} " in out
    assert capsys.readouterr().out == ""
    code = evaluate_cli.main([*argv, "--edited", "2", "--json"])
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["edits"]) == set(edits.EDITS)
    assert all(0.0 <= found["rank1"] <= found["top10"] <= 1.0 for found in scores["edits"].values())
    assert 0.0 <= scores["edited_recall@10"] <= 1.0


def test_a_folder_without_classes_is_refused_before_embedding(tmp_path, capsys):
    write_images(tmp_path / "flat", 4)
    with pytest.raises(SystemExit) as stop:
        evaluate_cli.main([str(tmp_path / "flat"), "--index-dir", str(tmp_path / "index")])
    assert stop.value.code == 2
    assert "needs at least two class sub-folders" in capsys.readouterr().err
    assert not (tmp_path / "index").exists()


def test_the_holidays_average_precision_is_inria_s_trapezoids():
    from imgsim.measure import scenes

    assert scenes.holidays_ap([0, 1], 2) == 1.0  # both relevant photos first
    assert scenes.holidays_ap([1], 1) == 0.25  # second place: (0/1 + 1/2) / 2, as holidays_map.py has it
    assert scenes.holidays_ap([0], 2) == 0.5  # one of two never found
    assert scenes.holidays_ap([], 3) == 0.0


def test_a_folder_with_groups_is_scored_with_the_holidays_map(tmp_path, tiny_model, capsys):
    """evaluate.py FOLDER --groups GT.json: each query's copies are its relevant photos (the same
    bytes: first whatever the network), by bare names as Holidays' gt.json gives them."""
    import shutil

    photos = write_images(tmp_path / "holidays" / "jpg", 10, seed=3)
    for path in photos[:3]:
        shutil.copy(path, path.with_name(path.stem + "-again.png"))
    groups = {p.name: [p.stem + "-again.png"] for p in photos[:3]}
    (tmp_path / "gt.json").write_text(json.dumps(groups))
    argv = [str(tmp_path / "holidays"), "--groups", str(tmp_path / "gt.json"), "--model", tiny_model]
    argv += ["--image-size", "32", "--trees", "5", "--edited", "0", "--index-dir", str(tmp_path / "index")]
    assert evaluate_cli.main([*argv, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert (scores["holidays_map"], scores["queries"], scores["items"]) == (1.0, 3, 13)
    assert evaluate_cli.main(argv) == 0
    assert "Holidays mAP 1.000" in capsys.readouterr().out

    (tmp_path / "gt.json").write_text(json.dumps({"nowhere.jpg": ["img0001.png"]}))
    assert evaluate_cli.main(argv) == 2
    assert "not in the index, e.g. nowhere.jpg" in capsys.readouterr().err
    (tmp_path / "gt.json").write_text("[1, 2]")
    with pytest.raises(SystemExit) as stop:
        evaluate_cli.main(argv)
    assert stop.value.code == 2 and "must map each query's name" in capsys.readouterr().err
