"""--engine ray: the same index as in-process, on a local Ray cluster with 2 actors, through kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, quiet_build, requires_shared, write_images
from imgsim.images import geometry
from imgsim.index import keypoints, store
from imgsim.index.depth import Depth
from imgsim.search import annoy_index

pytestmark = pytest.mark.slow  # a local Ray cluster

ray = pytest.importorskip("ray", reason="needs ray[data] (requirements.txt)")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster (2 CPUs) for the module; builds join it instead of starting their own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def ray_config(cfg, **changes):
    return cfg.replace(engine="ray", ray_actors=2, **changes)


def _vectors_by_path(index_dir) -> dict[str, np.ndarray]:
    index = annoy_index.open_index(index_dir)
    vectors = store.read_vectors(index.version)
    return {item.path: vectors[row] for row, item in enumerate(index.items)}


def _actor_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"MapWorker" in command or b"EmbedActor" in command:
                pids.append(int(entry.name))
    return pids


def test_ray_builds_the_same_index_as_in_process_and_lists_the_corrupt_file(
    cluster, photos, tiny_config, monkeypatch
):
    """The same vectors, and the same local features, found by the actors: the driver finds none
    (it read every file again for them)."""
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    tiny_config = tiny_config.replace(precision="f32")  # every photo embedded by the engine, none measured
    local = quiet_build(photos, tiny_config.replace(index_dir=tiny_config.index_dir / "local"))
    hashed, find = [], geometry.features  # the features a segment stores are hashed

    def counted(image, *args, **kwargs):
        hashed.append(kwargs.get("hashed", len(args) < 3 or args[2]))
        return find(image, *args, **kwargs)

    monkeypatch.setattr(geometry, "features", counted)
    on_ray = quiet_build(photos, ray_config(tiny_config, index_dir=tiny_config.index_dir / "ray"))
    assert True not in hashed  # none found on the driver
    found_here, found_there = keypoints.load(local.version), keypoints.load(on_ray.version)
    assert found_here is not None and found_there is not None
    for row in range(12):
        here, there = found_here.get(row), found_there.get(row)
        assert here is not None and there is not None
        assert np.array_equal(here.descriptors, there.descriptors) and np.array_equal(here.phash, there.phash)
    assert on_ray.items == local.items == 12
    assert [path for path, _ in on_ray.skipped] == [path for path, _ in local.skipped] == ["broken.jpg"]
    expected, got = (
        _vectors_by_path(tiny_config.index_dir / "local"),
        _vectors_by_path(tiny_config.index_dir / "ray"),
    )
    assert expected.keys() == got.keys()
    for path, vector in expected.items():
        cosine = float(vector @ got[path] / (np.linalg.norm(vector) * np.linalg.norm(got[path])))
        assert cosine >= 0.999, (path, cosine)
    manifest = store.read_manifest(on_ray.version)
    assert (manifest.engine, manifest.engine_actors, manifest.engine_nodes) == ("ray", 2, 1)


def test_a_first_build_over_the_segment_size_builds_its_segments_as_ray_tasks(cluster, photos, tiny_config):
    from imgsim.indexing import indexer

    lines: list[str] = []
    cfg = ray_config(tiny_config, segment_items=5)
    report = indexer.build_index(photos, cfg, progress=False, log=lines.append)
    refs = store.read_segments(report.version)
    assert [ref.count for ref in refs] == [5, 5, 2]
    assert any("built as tasks" in line for line in lines), lines
    index = annoy_index.open_index(cfg.index_dir)
    for row, item in enumerate(index.items):  # each segment's Annoy file answers for its rows
        assert index.search_reduced(index.stored_vector(row), k=1, depth=Depth.of(1000))[0].id == item.id


def test_an_actor_killed_mid_run_still_gives_a_complete_build(cluster, tmp_path, tiny_config):
    photos = tmp_path / "many"
    write_images(photos, 160, size=64)
    # f32 by name: auto's precision check would embed so small a collection whole, before the engine runs
    cfg = ray_config(tiny_config, image_size=256, checkpoint_every=8, precision="f32")
    outcome: dict = {}
    build = threading.Thread(target=lambda: outcome.update(report=quiet_build(photos, cfg)))
    build.start()
    partial = store.partial_dir(cfg.index_dir)
    while build.is_alive() and not any(partial.glob("chunk-*.npz")):
        time.sleep(0.02)
    victims = _actor_pids()
    assert build.is_alive() and victims, "the build ended before an actor could be killed"
    os.kill(victims[0], signal.SIGKILL)
    build.join(timeout=300)
    report = outcome["report"]
    assert report.items == 160 and not report.skipped


def test_a_driver_killed_mid_run_resumes_without_embedding_again(cluster, tmp_path, tiny_config):
    photos = tmp_path / "many"
    write_images(photos, 200, size=64)
    cfg = ray_config(tiny_config, image_size=256, checkpoint_every=8, ray_address=cluster, precision="f32")
    command = [
        sys.executable,
        "img2vec.py",
        str(photos),
        "--no-progress",
        "--engine",
        "ray",
        "--ray-actors",
        "2",
        "--ray-address",
        cluster,
        "--index-dir",
        str(cfg.index_dir),
        "--model",
        cfg.model,
        "--image-size",
        "256",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "8",
        "--precision",
        "f32",
    ]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = store.partial_dir(cfg.index_dir)
    while driver.poll() is None and not any(partial.glob("chunk-*.npz")):
        time.sleep(0.02)
    driver.kill()
    assert driver.wait() == -signal.SIGKILL, "the build ended before its driver could be killed"
    assert not (cfg.index_dir / "current").exists()
    report = quiet_build(photos, cfg)
    assert report.items == 200 and report.reused >= 8 and report.embedded <= 200 - 8


def test_a_node_that_cannot_read_the_collection_says_so_in_one_sentence(tiny_model, tmp_path):
    from imgsim.indexing import rayengine

    expected = r"cannot read the collection root .*absent: put"
    with pytest.raises(rayengine.CollectionUnreadable, match=expected):
        rayengine.EmbedActor(tiny_model, None, 32, "unused", 1_000_000, str(tmp_path / "absent"))


@requires_shared
def test_actors_load_the_drivers_model_under_the_same_key(tmp_path):
    """With the default image size (0 = the model's own) the actors asked for 224 and refused to
    embed: their model key differed from the driver's."""
    from imgsim import config
    from imgsim.indexing import rayengine
    from imgsim.models import embedders

    cfg = config.Config(model=str(config.SHARED_MODEL))
    driver = embedders.load_embedder(cfg.model, embedders.weights_setting(cfg.weights), cfg.image_size)
    actor = rayengine.EmbedActor(**rayengine.actor_arguments(driver, cfg, str(tmp_path)))
    assert actor.embedder.key == driver.key


def test_actors_run_the_drivers_runtime_with_as_many_threads_as_their_cpus(tmp_path, tiny_model):
    """A driver on OpenVINO gets actors on OpenVINO (the same conversion, from the cache); one that
    fell back to TensorFlow gets actors on TensorFlow."""
    from imgsim import config
    from imgsim.indexing import rayengine
    from imgsim.models import embedders, runtimes

    cfg = config.Config(model=tiny_model, image_size=32, ray_cpus_per_actor=1.5)
    driver = embedders.load_embedder(tiny_model, None, 32, runtimes.of(cfg))
    arguments = rayengine.actor_arguments(driver, cfg, str(tmp_path))
    assert (arguments["runtime"], arguments["threads"]) == ("openvino", 2)
    actor = rayengine.EmbedActor(**arguments)
    assert actor.embedder.runtime == "openvino" and actor.embedder.converted == driver.converted
    on_tf = embedders.load_embedder(tiny_model, None, 32)
    assert rayengine.actor_arguments(on_tf, cfg, str(tmp_path))["runtime"] == "tensorflow"
