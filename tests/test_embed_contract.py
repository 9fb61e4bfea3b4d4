"""Both embedding engines keep one contract (indexing/embed_contract.py): vectors by path, skips with
their reason, and the vectors made so far saved however the run ends."""

import functools

import numpy as np
import pytest
from PIL import Image

from helpers import requires_shared
from imgsim.duplicates import pair_evidence
from imgsim.images import geometry
from imgsim.index import keypoints, store
from imgsim.indexing import collection, local_engine
from imgsim.indexing.embed_contract import EmbedJob
from imgsim.models import embedders


def _job(photos, cfg, saved: list, **kwargs) -> EmbedJob:
    root, entries, _ = collection.scan(photos)
    embedder = embedders.from_config(cfg, log=lambda line: None)
    return EmbedJob(entries, embedder, cfg, str(root), {}, saved.extend, progress=False, **kwargs)


def test_every_file_comes_back_embedded_reused_or_skipped_with_its_reason(photos, tiny_config):
    (photos / "broken.png").write_bytes(b"not an image")
    saved: list = []
    job = _job(photos, tiny_config.replace(batch_size=4, checkpoint_every=4), saved)
    result = local_engine.embed_files(job)
    assert sorted(result.vectors) == [f"img{n:04d}.png" for n in range(12)] and result.embedded == 12
    assert [path for path, _ in result.skipped] == ["broken.png"]
    assert sorted(entry.path for entry, _, _ in saved) == sorted(result.vectors)  # every vector saved once

    again = _job(photos, tiny_config, [])
    again.known_sha1 = dict(result.vectors)
    reused = local_engine.embed_files(again)
    assert reused.embedded == 0 and all(
        np.array_equal(reused.vectors[p][1], result.vectors[p][1]) for p in result.vectors
    )


def test_the_vectors_made_before_a_failure_are_saved_for_the_rerun(photos, tiny_config):
    """The in-process engine once saved them only when interrupted (Ctrl-C), the Ray engine always:
    a model that failed mid-run lost the local engine's last vectors."""
    saved: list = []
    job = _job(photos, tiny_config.replace(batch_size=4, checkpoint_every=100), saved)
    calls = {"n": 0}
    embed = job.embedder.embed

    def fails_on_the_third_batch(pixels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the accelerator went away")
        return embed(pixels)

    job.embedder.embed = fails_on_the_third_batch
    with pytest.raises(RuntimeError, match="went away"):
        local_engine.embed_files(job)
    assert len(saved) == 8  # two batches of four, kept although the checkpoint was not yet due


def test_saved_vectors_are_read_back_from_their_checkpoint_not_held_in_memory(photos, tiny_config):
    """A first build of a million photos held every vector until it was written (5 GB at 1280-d);
    now a vector saved to a checkpoint is read back from it as asked for."""
    cfg = tiny_config.replace(batch_size=4, checkpoint_every=4)
    root, entries, _ = collection.scan(photos)
    embedder = embedders.from_config(cfg, log=lambda line: None)
    save = functools.partial(collection.save_checkpoint, cfg.index_dir, embedder.key, root)
    streamed = local_engine.embed_files(EmbedJob(entries, embedder, cfg, str(root), {}, save, progress=False))
    held = local_engine.embed_files(EmbedJob(entries, embedder, cfg, str(root), {}, None, progress=False))
    assert streamed.vectors.held == {} and len(streamed.vectors.saved) == 12  # all in 3 checkpoints
    assert sorted(streamed.vectors) == sorted(held.vectors)
    for path in held.vectors:
        assert streamed.vectors[path][0] == held.vectors[path][0]
        assert np.allclose(streamed.vectors[path][1], held.vectors[path][1], atol=1e-6)
    assert streamed.vectors.sha1s() == held.vectors.sha1s()


def test_local_features_are_found_from_the_decode_for_the_network_and_kept_beside_the_checkpoint(
    photos, tiny_config
):
    """Each file's local features come from the decoding thread (its file is not decoded again
    when its segment is written): the same as found from the file, saved with the vectors'
    checkpoint and read back from there."""
    cfg = tiny_config.replace(batch_size=4, checkpoint_every=4)
    root, entries, _ = collection.scan(photos)
    embedder = embedders.from_config(cfg, log=lambda line: None)
    save = functools.partial(collection.save_checkpoint, cfg.index_dir, embedder.key, root)
    result = local_engine.embed_files(EmbedJob(entries, embedder, cfg, str(root), {}, save, progress=False))
    assert result.vectors.found == {} and len(list(store.partial_dir(cfg.index_dir).glob("*.features"))) == 3
    items = [store.Item(n, entry.path, entry.size, entry.mtime_ns, "") for n, entry in enumerate(entries)]
    from_files = pair_evidence.features_of(root, items, cfg.max_image_pixels)
    for row, item in enumerate(items):
        found, expected = result.vectors.features_of(item.path), from_files(row)
        assert found is not None and expected is not None
        assert np.array_equal(found.points, expected.points) and np.array_equal(
            found.descriptors, expected.descriptors
        )
        assert found.size == expected.size and np.array_equal(found.phash, expected.phash)


def test_a_resumed_build_reads_the_local_features_its_killed_run_found(photos, tiny_config, monkeypatch):
    """A build that fails after two checkpoints resumes with their vectors, and their features:
    none of its files is decoded again for them when its segment is written."""
    from imgsim.indexing import indexer

    cfg = tiny_config.replace(batch_size=4, checkpoint_every=4, precision="f32")
    passes, embed = [], embedders.Embedder.embed

    def fails_on_the_third_batch(self, pixels):
        passes.append(len(pixels))
        if len(passes) == 3:
            raise RuntimeError("killed")
        return embed(self, pixels)

    monkeypatch.setattr(embedders.Embedder, "embed", fails_on_the_third_batch)
    with pytest.raises(RuntimeError, match="killed"):
        indexer.build_index(photos, cfg, progress=False, log=lambda line: None)
    monkeypatch.setattr(embedders.Embedder, "embed", embed)
    from_files, features_of = [], pair_evidence.features_of

    def counted(root, items, max_pixels, mirrored=False):
        get = features_of(root, items, max_pixels, mirrored)

        def counting(row):
            from_files.extend([] if mirrored else [items[row].path])
            return get(row)

        return counting

    monkeypatch.setattr(pair_evidence, "features_of", counted)
    report = indexer.build_index(photos, cfg, progress=False, log=lambda line: None)
    assert report.items == 12 and report.embedded == 4  # 8 resumed from the checkpoints
    assert from_files == []


def test_a_run_killed_while_writing_a_checkpoints_features_resumes(photos, tiny_config, monkeypatch):
    """Killed just after a chunk was saved, a run left its features half written beside it, and
    the resumed run read them and failed (tests/test_img2vec.py's kill -9 found it, now and then):
    they are renamed into place only whole."""
    from imgsim.indexing import indexer

    cfg = tiny_config.replace(batch_size=4, checkpoint_every=4, precision="f32")
    save = keypoints.save

    def dies_half_way(folder, found):
        np.save(folder / keypoints.OFFSETS, np.zeros(len(found) + 1, np.int64))
        (folder / keypoints.POINTS).write_bytes(b"\x93NUMPY")  # the process dies here
        raise KeyboardInterrupt

    monkeypatch.setattr(keypoints, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        indexer.build_index(photos, cfg, progress=False, log=lambda line: None)
    assert list(store.partial_dir(cfg.index_dir).glob("chunk-*.npz"))  # a chunk saved before it died
    monkeypatch.setattr(keypoints, "save", save)
    report = indexer.build_index(photos, cfg, progress=False, log=lambda line: None)
    assert report.items == 12


def test_checkpoints_features_are_read_back_from_many_threads_at_once(photos, tiny_config, monkeypatch):
    """A segment's features are gathered in threads; two that opened and evicted checkpoints'
    files at once lost each other's (a KeyError, found by tests/test_img2vec.py's resumed build)."""
    from concurrent.futures import ThreadPoolExecutor

    from imgsim.indexing.embed_contract import Vectors

    cfg = tiny_config.replace(batch_size=1, checkpoint_every=1)
    root, entries, _ = collection.scan(photos)
    embedder = embedders.from_config(cfg, log=lambda line: None)
    save = functools.partial(collection.save_checkpoint, cfg.index_dir, embedder.key, root)
    result = local_engine.embed_files(EmbedJob(entries, embedder, cfg, str(root), {}, save, progress=False))
    monkeypatch.setattr(Vectors, "MAPPED", 2)  # 12 checkpoints, 2 open at a time: evictions all along
    paths = [entry.path for entry in entries] * 40
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(result.vectors.features_of, paths))
    assert all(features is not None for features in found)


def test_a_ray_actor_sends_local_features_back_as_bytes_that_unpack_to_the_same():
    rng = np.random.default_rng(5)
    picture = Image.fromarray(rng.integers(0, 256, (90, 120, 3), np.uint8))
    for found in (geometry.features(picture), geometry.features(picture, hashed=False)):
        again = keypoints.unpacked(keypoints.packed(found))
        assert np.array_equal(again.points, found.points) and np.array_equal(
            again.descriptors, found.descriptors
        )
        assert (again.size, again.gray) == (found.size, found.gray)
        assert (again.phash is None) == (found.phash is None)
        assert found.phash is None or np.array_equal(again.phash, found.phash)


def test_a_rerun_resumes_from_checkpoints_of_either_format(photos, tiny_config):
    """Chunks now keep their vectors in a file of their own; one saved before holds them inside."""
    cfg = tiny_config.replace(batch_size=4, checkpoint_every=4)
    root, entries, _ = collection.scan(photos)
    embedder = embedders.from_config(cfg, log=lambda line: None)
    vectors = np.arange(12 * 8, dtype=np.float32).reshape(12, 8)
    done = [(entry, f"sha{n}", vectors[n]) for n, entry in enumerate(entries)]
    collection.save_checkpoint(cfg.index_dir, embedder.key, root, done[:6])
    collection.save_checkpoint(cfg.index_dir, embedder.key, root, done[6:])
    old = store.partial_dir(cfg.index_dir) / "chunk-000001.npz"  # rewritten as a chunk of before
    with np.load(old) as data:
        arrays = {name: data[name] for name in data.files} | {"vectors": vectors[6:]}
    old.with_suffix(".npy").unlink()
    np.savez(old, **arrays)
    known = collection.known_vectors(cfg.index_dir, None, embedder.key, root)
    assert len(known) == 12
    assert all(np.array_equal(known[entry.path].vector, vectors[n]) for n, entry in enumerate(entries))


@requires_shared
@pytest.mark.parametrize("precision", ["f32", "auto"])  # auto: the photos measured for it, found then
def test_a_build_decodes_a_camera_jpeg_once_for_its_vector_and_its_local_features(
    tmp_path, monkeypatch, precision
):
    """Its segment's features were found by decoding each file again at 1/8 scale (8.6 ms of a
    core for 4000 x 3000); now they come from the network's decode, halved: the same picture
    to verification, its hashes within a few bits (these soft photos' at most 4)."""

    from imgsim import config
    from imgsim.images import geometry, imaging
    from imgsim.index import keypoints
    from imgsim.indexing import indexer

    folder = tmp_path / "camera"
    folder.mkdir()
    for n, photo in enumerate(sorted(config.SHARED_FLOWERS.rglob("*.jpg"))[::1000][:3]):
        imaging.open_rgb(photo).resize((2000, 1500)).save(folder / f"{n}.jpg", quality=90)
    sides: list = []
    decode = imaging.decode_rgb

    def counted(data, max_pixels=64_000_000, min_side=None):
        sides.append(min_side)
        return decode(data, max_pixels, min_side)

    monkeypatch.setattr(imaging, "decode_rgb", counted)
    cfg = config.Config(model=str(config.SHARED_MODEL), index_dir=tmp_path / "index", precision=precision)
    indexer.build_index(folder, cfg, progress=False, log=lambda line: None)
    assert geometry.ANALYSED_SIDE not in sides and sides.count(448) >= 3
    monkeypatch.setattr(imaging, "decode_rgb", decode)
    index_features = keypoints.load(store.current_version(cfg.index_dir))
    items = store.read_items(store.current_version(cfg.index_dir))
    for row, item in enumerate(items):
        stored = index_features.get(row)
        again = geometry.features(imaging.open_rgb(folder / item.path, min_side=geometry.ANALYSED_SIDE))
        match = geometry.verify(stored, again)
        assert stored.size == again.size == (500, 375) and match is not None
        bits = np.unpackbits(stored.phash ^ again.phash, axis=1).sum(axis=1)  # at each quarter turn
        assert match.inliers >= 0.5 * len(again.points) and bits.max() <= 4, (match.inliers, bits)
