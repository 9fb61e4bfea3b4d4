"""A build measures how deep Annoy must search for edited uploads, and keeps what it measured."""

import numpy as np

from helpers import quiet_build
from imgsim.images.edits import CALIBRATION
from imgsim.index import store
from imgsim.index.depth import Depth
from imgsim.models import embedders
from imgsim.search import annoy_index, tuning


def test_a_build_records_the_depth_it_chose_and_the_curve_it_chose_from(photos, tiny_config):
    quiet_build(photos, tiny_config.replace(target_recall=0.9, recall_sample=4))
    index = annoy_index.open_index(tiny_config.index_dir)
    curve = index.manifest.recall
    assert curve is not None and (curve.target, curve.queries) == (0.9, 4 * len(CALIBRATION))
    assert index.manifest.search_k == curve.search_k and index.search_k() == curve.search_k
    assert curve.points and curve.points[0].search_k == tiny_config.trees * 10
    assert index.search_k(Depth.of(123)) == 123  # a --search-k given wins over the build's choice
    with np.load(index.version / tuning.CALIBRATION_FILE) as saved:
        assert len(saved["vectors"]) == 4 * len(CALIBRATION)
        assert set(saved["ids"].tolist()) <= {item.id for item in index.items}


def test_a_rebuild_reuses_the_edited_queries_instead_of_running_the_network(photos, tiny_config, monkeypatch):
    cfg = tiny_config.replace(recall_sample=4)
    quiet_build(photos, cfg)
    before = annoy_index.open_index(cfg.index_dir)
    with np.load(before.version / tuning.CALIBRATION_FILE) as saved:
        ids = saved["ids"]
    kept = {item.id for item in before.items}
    victim = next(item for item in before.items if item.id not in set(ids.tolist()))
    (photos / victim.path).unlink()  # a rebuild that only removes: nothing to embed

    def no_network(*args, **kwargs):
        raise AssertionError("the rebuild loaded the model")

    monkeypatch.setattr(embedders, "from_config", no_network)
    report = quiet_build(photos, cfg)
    assert report.embedded == 0 and report.items == len(kept) - 1
    after = annoy_index.open_index(cfg.index_dir)
    with np.load(after.version / tuning.CALIBRATION_FILE) as saved:
        assert saved["ids"].tolist() == ids.tolist()
    assert after.manifest.recall is not None and after.manifest.recall.queries == len(ids)


def test_centring_is_stored_and_applied_to_queries_as_to_the_collection(photos, tiny_config):
    quiet_build(photos, tiny_config)
    index = annoy_index.open_index(tiny_config.index_dir)
    assert index.manifest.centre == "mean" and index.centre is not None
    vectors = store.read_vectors(index.version)
    assert np.allclose(index.to_index_space(vectors[:3]), index.stored_vectors()[:3], atol=1e-5)
    # a query equal to a stored photo finds that photo first, through the centring
    assert index.search(vectors[5], k=1)[0].id == index.items[5].id

    quiet_build(photos, tiny_config.replace(centre="none"))  # a setting change is a rebuild
    plain = annoy_index.open_index(tiny_config.index_dir)
    assert plain.manifest.centre == "none" and plain.centre is None
    assert not (plain.version / annoy_index.CENTRE_FILE).exists()
    assert np.allclose(plain.stored_vectors(), vectors, atol=1e-5)


def test_calibration_can_be_switched_off(photos, tiny_config):
    quiet_build(photos, tiny_config.replace(recall_sample=0))
    manifest = store.read_manifest(annoy_index.open_index(tiny_config.index_dir).version)
    assert manifest.recall is None and manifest.search_k == -1
