"""Building the index: models, incremental reruns, unreadable files, resumes and atomic swaps."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, quiet_build, write_images
from imgsim import durable
from imgsim.index import segments, store
from imgsim.indexing import collection, indexer
from imgsim.models import embedders
from imgsim.search import annoy_index


def _current_ids(index_dir):
    version = store.current_version(index_dir)
    return {item.path: item.id for item in store.read_items(version)}


def test_inception_v3_gives_2048_d_vectors_with_its_own_preprocessing():
    embedder = embedders.load_embedder("inception_v3", weights=None)  # random weights: shape only
    assert (embedder.input_size, embedder.dim) == (299, 2048)
    scaled = embedder.preprocess(np.array([0.0, 127.5, 255.0], dtype=np.float32))
    assert scaled.tolist() == [-1.0, 0.0, 1.0]  # Inception expects -1..1, not 0..255
    vectors = embedder.embed(np.zeros((2, 299, 299, 3), dtype=np.uint8))
    assert vectors.shape == (2, 2048) and vectors.dtype == np.float32


def test_missing_imagenet_weights_stop_with_one_clear_sentence(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(embedders.WeightsUnavailable, match="could not be downloaded.*--weights PATH"):
        embedders.load_embedder("mobilenet_v2", weights="imagenet")


def test_a_missing_weights_file_or_unknown_model_is_named():
    with pytest.raises(embedders.WeightsUnavailable, match="does not exist"):
        embedders.load_embedder("resnet50", weights="/nowhere/resnet.h5")
    with pytest.raises(embedders.WeightsUnavailable, match="unknown model 'alexnet'"):
        embedders.load_embedder("alexnet")


def test_scan_walks_folders_recursively_and_accepts_globs(tmp_path):
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "a" / "deeper", 1)
    write_images(tmp_path / ".hidden", 1)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    root, entries, _ = collection.scan(tmp_path)
    assert root == tmp_path.resolve()
    assert [e.path for e in entries] == ["a/deeper/img0000.png", "a/img0000.png", "a/img0001.png"]
    root, entries, _ = collection.scan(str(tmp_path / "a" / "*.png"))
    assert root == (tmp_path / "a").resolve()
    assert [e.path for e in entries] == ["img0000.png", "img0001.png"]


def test_build_then_search_finds_each_image_itself(tmp_path, tiny_config):
    write_images(tmp_path / "photos", 12)
    report = quiet_build(tmp_path / "photos", tiny_config)
    assert (report.items, report.embedded) == (12, 12)
    index = annoy_index.open_index(tiny_config.index_dir)
    assert index.manifest.items == 12 and index.manifest.dims == 16
    vectors = store.read_vectors(index.version)
    hits = index.search(vectors[3], k=3)
    assert hits[0].path == index.items[3].path and hits[0].distance < 1e-3


def test_rerun_embeds_only_new_and_changed_files_and_drops_deleted(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    paths = write_images(photos, 10)
    quiet_build(photos, tiny_config)
    ids_before = _current_ids(tiny_config.index_dir)

    again = quiet_build(photos, tiny_config)
    assert again.up_to_date and again.embedded == 0

    write_images(photos, 3, seed=7, prefix="new")
    paths[0].unlink()
    write_images(photos, 1, seed=9, prefix="img")  # img0000.png again, with new content
    os.utime(paths[1], ns=(1, 1))  # touched, same content: reused through its checksum
    report = quiet_build(photos, tiny_config)
    assert report.embedded == 4  # three new files and the re-created img0000.png
    assert report.items == 13 and report.reused == 9
    ids_after = _current_ids(tiny_config.index_dir)
    assert all(ids_after[p] == ids_before[p] for p in ids_before if p != "img0000.png" and p in ids_after)
    assert {"new0000.png", "new0001.png", "new0002.png"} <= set(ids_after)


def test_a_build_reads_the_current_version_once(tmp_path, tiny_config, monkeypatch):
    """Its manifest and items are read once and passed on (they were read five times)."""
    photos = tmp_path / "photos"
    write_images(photos, 8)
    quiet_build(photos, tiny_config)
    calls = {"current_version": 0, "read_manifest": 0, "read_items": 0}
    for name in calls:
        original = getattr(store, name)

        def counted(*args, name=name, original=original):
            calls[name] += 1
            return original(*args)

        monkeypatch.setattr(store, name, counted)
    write_images(photos, 2, seed=5, prefix="more")
    assert quiet_build(photos, tiny_config).embedded == 2
    # the pointer once for the build, once for clean()'s check of stale checkpoints beforehand
    assert calls == {"current_version": 2, "read_manifest": 1, "read_items": 1}
    calls.update(dict.fromkeys(calls, 0))
    assert quiet_build(photos, tiny_config).up_to_date
    assert calls == {"current_version": 2, "read_manifest": 1, "read_items": 1}


def test_deleted_files_disappear_from_the_index(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    paths = write_images(photos, 6)
    quiet_build(photos, tiny_config)
    paths[2].unlink()
    report = quiet_build(photos, tiny_config)
    assert (report.removed, report.items, report.embedded) == (1, 5, 0)
    assert "img0002.png" not in _current_ids(tiny_config.index_dir)


def test_unreadable_files_are_skipped_and_reported_without_stopping_the_run(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 5)
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = (photos / "img0001.png").read_bytes()
    (photos / "truncated.png").write_bytes(good[: len(good) // 2])
    report = quiet_build(photos, tiny_config)
    assert report.items == 5
    assert sorted(path for path, _ in report.skipped) == ["corrupt.jpg", "truncated.png"]
    skipped = durable.read_json(report.version / "skipped.json")
    assert {entry["path"] for entry in skipped} == {"corrupt.jpg", "truncated.png"}


def test_a_failed_build_leaves_the_previous_version_serving(tmp_path, tiny_config, monkeypatch):
    photos = tmp_path / "photos"
    write_images(photos, 6)
    first = quiet_build(photos, tiny_config).version
    write_images(photos, 2, seed=5, prefix="more")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(segments, "build_annoy", disk_full)
    with pytest.raises(OSError, match="No space"):
        quiet_build(photos, tiny_config)
    assert store.current_version(tiny_config.index_dir) == first
    assert not list(store.versions_dir(tiny_config.index_dir).glob(".building-*"))
    assert annoy_index.open_index(tiny_config.index_dir).manifest.items == 6


def test_only_one_rebuild_at_a_time(tmp_path, tiny_config):
    with (
        store.build_lock(tiny_config.index_dir),
        pytest.raises(store.BuildInProgress, match="another rebuild"),
    ):
        indexer.build_index(tmp_path, tiny_config, progress=False)


def test_a_killed_build_keeps_current_and_the_rerun_resumes(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 4)
    first = quiet_build(photos, tiny_config).version
    write_images(photos, 240, size=160, seed=3, prefix="batch")
    command = [
        sys.executable,
        str(ROOT / "img2vec.py"),
        str(photos),
        "--no-progress",
        "--model",
        tiny_config.model,
        "--image-size",
        "320",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "8",
        "--trees",
        "10",
        "--index-dir",
        str(tiny_config.index_dir),
        "--precision",  # by name: auto's precision check would embed so small a collection whole
        "f32",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = store.partial_dir(tiny_config.index_dir)
    deadline = time.monotonic() + 120
    while not list(partial.glob("chunk-*.npz")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(partial.glob("chunk-*.npz")), "the build ended before it saved a checkpoint"
    assert store.current_version(tiny_config.index_dir) == first  # still the old version
    assert annoy_index.open_index(tiny_config.index_dir).manifest.items == 4

    resumed = quiet_build(photos, tiny_config.replace(image_size=320, precision="f32"))
    assert resumed.items == 244
    assert resumed.embedded < 240  # the checkpointed images were not embedded again
    assert not partial.exists()


@pytest.mark.parametrize("reduction", ["pca", "whiten", "autoencoder"])
def test_reduced_indexes_answer_queries_in_the_reduced_space(tmp_path, tiny_config, reduction):
    photos = tmp_path / "photos"
    write_images(photos, 40)
    cfg = tiny_config.replace(reduce=reduction, dims=8, epochs=2)
    quiet_build(photos, cfg)
    index = annoy_index.open_index(cfg.index_dir)
    assert (index.manifest.dims, index.manifest.embedding_dim) == (8, 16)
    assert index.annoy.f == 8
    vectors = store.read_vectors(index.version)
    assert index.search(vectors[5], k=1)[0].path == index.items[5].path


def _two_versions(photos: Path, cfg) -> tuple[Path, Path]:
    """A build of four images, then one of five: the two versions they published."""
    write_images(photos, 4)
    first = quiet_build(photos, cfg).version
    write_images(photos, 1, seed=2, prefix="extra")
    return first, quiet_build(photos, cfg).version


def test_every_run_cleans_what_a_killed_run_left(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setattr(store, "RETIRED_GRACE_S", 0.0)  # no request is reading the old versions
    photos = tmp_path / "photos"
    cfg = tiny_config.replace(keep_versions=1)
    first, second = _two_versions(photos, cfg)
    old = store.versions_dir(cfg.index_dir)
    for name in ("20200101T000000-aaaa", "20200102T000000-bbbb"):  # versions beyond keep_versions
        (old / name).mkdir()
    (old / ".building-20200103T000000-cccc").mkdir()  # a build killed before it published
    stale = store.partial_dir(cfg.index_dir) / "chunk-000000.npz"  # killed after publishing
    stale.parent.mkdir()
    stale.write_bytes(b"taken in already")
    os.utime(stale, ns=(1, 1))
    assert quiet_build(photos, cfg).up_to_date  # a run with nothing to do cleans all the same
    assert sorted(p.name for p in old.iterdir()) == sorted([first.name, second.name])
    assert not stale.exists()


def test_a_version_replaced_moments_ago_outlives_keep_versions_until_its_grace_has_passed(
    tmp_path, tiny_config
):
    """Compactions a few seconds apart once pruned the version a long request was still reading
    (its files gone mid-request: 500s; hardening item 14)."""
    photos = tmp_path / "photos"
    cfg = tiny_config.replace(keep_versions=0)
    first, second = _two_versions(photos, cfg)
    assert first.is_dir()  # replaced a moment ago: a request may still be reading it
    long_ago = time.time() - store.RETIRED_GRACE_S - 1
    os.utime(second / "manifest.json", (long_ago, long_ago))
    write_images(photos, 1, seed=3, prefix="more")
    third = quiet_build(photos, cfg).version
    assert not first.exists() and second.is_dir() and third.is_dir()


def test_the_manifest_says_where_the_weights_came_from(tmp_path, tiny_config):
    write_images(tmp_path / "photos", 4)
    version = quiet_build(tmp_path / "photos", tiny_config).version
    assert store.read_manifest(version).weights == "file"  # inside the .keras file, not "none"


def test_a_fifo_or_an_oversized_file_is_skipped_with_its_reason_never_read(tmp_path, tiny_config):
    """A FIFO named x.jpg once hung img2vec.py forever, and a 2 GiB sparse big.jpg was read whole
    before being refused (hardening item 10)."""
    import threading

    photos = tmp_path / "photos"
    write_images(photos, 4)
    os.mkfifo(photos / "x.jpg")
    with open(photos / "big.jpg", "wb") as handle:
        handle.truncate(3 * 1024 * 1024)  # sparse: nothing written, every byte would be read
    built: list = []
    cfg = tiny_config.replace(max_file_bytes=2 * 1024 * 1024)
    worker = threading.Thread(target=lambda: built.append(quiet_build(photos, cfg)), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert built, "the build hung on the FIFO"
    reasons = dict(built[0].skipped)
    assert built[0].items == 4 and set(reasons) == {"x.jpg", "big.jpg"}
    assert "not a regular file" in reasons["x.jpg"]
    assert reasons["big.jpg"] == "3,145,728 bytes, more than the 2,097,152 a file may have"


def test_a_link_out_added_after_a_build_is_listed_even_when_nothing_else_changed(tmp_path, tiny_config):
    """With nothing else to do, the build said "up to date" and never named the refused link."""
    photos = tmp_path / "photos"
    write_images(photos, 3)
    quiet_build(photos, tiny_config)
    secret = write_images(tmp_path / "elsewhere", 1, seed=3, prefix="secret")[0]
    (photos / "late.png").symlink_to(secret)
    report = quiet_build(photos, tiny_config)
    assert report.up_to_date and report.skipped == [("late.png", collection.OUTSIDE)]


def test_a_glob_with_a_link_out_of_the_collection_refuses_it_and_goes_on(tmp_path):
    """In glob mode the link was resolved first, and naming it relative to the collection crashed."""
    photos = tmp_path / "photos"
    write_images(photos, 2)
    secret = write_images(tmp_path / "elsewhere", 1, seed=3, prefix="secret")[0]
    (photos / "link.png").symlink_to(secret)
    root, entries, refused = collection.scan(f"{photos}/*.png")
    assert [e.path for e in entries] == ["img0000.png", "img0001.png"]
    assert refused == [("link.png", collection.OUTSIDE)]


def test_a_link_to_a_file_outside_the_collection_is_skipped_and_never_served(tmp_path, tiny_config):
    """It was indexed, and GET /images/<id> returned the outside file's bytes."""
    from imgsim.serve import app as app_module

    photos = tmp_path / "photos"
    write_images(photos, 4)
    secret = write_images(tmp_path / "elsewhere", 1, seed=3, prefix="secret")[0]
    (photos / "link.png").symlink_to(secret)
    (photos / "inside.png").symlink_to(photos / "img0001.png")  # a link within the collection is fine
    report = quiet_build(photos, tiny_config)
    assert report.items == 5 and ("link.png", collection.OUTSIDE) in report.skipped
    version = store.current_version(tiny_config.index_dir)
    assert {"path": "link.png", "reason": collection.OUTSIDE} in durable.read_json(version / "skipped.json")
    items = store.read_items(version)
    assert "link.png" not in {i.path for i in items}
    client = app_module.create_app(tiny_config).test_client()
    (photos / "img0002.png").unlink()
    (photos / "img0002.png").symlink_to(secret)  # swapped for a link after the build
    item = next(i for i in items if i.path == "img0002.png")
    assert client.get(f"/images/{item.id}").get_json()["code"] == "outside_collection"
    assert client.get(f"/thumbs/{item.id}").get_json()["code"] == "outside_collection"
    inside = next(i for i in items if i.path == "inside.png")
    assert client.get(f"/images/{inside.id}").data == (photos / "img0001.png").read_bytes()


def test_a_file_swapped_for_a_link_between_the_check_and_the_read_is_never_sent(
    tmp_path, tiny_config, monkeypatch
):
    """/images/<id> checked the path, then send_file opened it again: a collection writer who
    swapped the file for a link in between got any file the service can read (hardening item 8).
    The swap is made the moment anything checks the path; what is sent must be the checked file."""
    from imgsim.serve import app as app_module

    photos = tmp_path / "photos"
    write_images(photos, 3)
    secret = tmp_path / "live.sqlite"
    secret.write_bytes(b"the admin's secrets")
    quiet_build(photos, tiny_config)
    item = next(
        i for i in store.read_items(store.current_version(tiny_config.index_dir)) if i.path == "img0001.png"
    )
    original = (photos / "img0001.png").read_bytes()
    real_inside = collection.inside

    def swap_after_checking(root, path):
        answer = real_inside(root, path)
        if Path(path).name == "img0001.png" and not Path(path).is_symlink():
            (photos / "img0001.png").unlink()
            (photos / "img0001.png").symlink_to(secret)
        return answer

    monkeypatch.setattr(collection, "inside", swap_after_checking)
    real_opened_path = getattr(durable, "_opened_path", None)

    def swap_after_finding_where_it_lies(descriptor):  # where the opened file itself is checked
        answer = real_opened_path(descriptor)
        swap_after_checking(photos, photos / "img0001.png")
        return answer

    monkeypatch.setattr(durable, "_opened_path", swap_after_finding_where_it_lies, raising=False)
    reply = app_module.create_app(tiny_config).test_client().get(f"/images/{item.id}")
    monkeypatch.undo()
    assert reply.status_code == 200 and reply.data == original and b"secrets" not in reply.data


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The paths os.fsync is called on, in order."""
    done: list[str] = []
    original = os.fsync

    def record(fd: int) -> None:
        done.append(os.readlink(f"/proc/self/fd/{fd}"))
        original(fd)

    monkeypatch.setattr(os, "fsync", record)
    return done


def test_a_durable_write_is_on_disk_with_its_folder_before_it_returns(tmp_path, fsynced):
    """After os.replace the folder was not fsynced: after a power cut the row could survive the file."""
    durable.atomic_write(tmp_path / "upload.png", lambda handle: handle.write(b"png"), durable=True)
    written, folder = fsynced[-2:]
    assert Path(written).name.startswith(".upload.png.") and folder == str(tmp_path)  # bytes, then the name


def test_every_file_of_a_version_is_on_disk_before_current_points_at_it(tmp_path, tiny_config, fsynced):
    write_images(tmp_path / "photos", 4)
    version = quiet_build(tmp_path / "photos", tiny_config).version
    files = {str(p) for p in version.rglob("*") if p.is_file()}
    synced_before = {path.replace(store.BUILDING_PREFIX, "") for path in fsynced}
    assert files <= synced_before and {str(version), str(version.parent)} <= synced_before
