"""Ids are identities: never given twice, never renumbered, whatever runs at the same time."""

import time

import pytest

import img2vec
from helpers import AdminActions, on_live_backend, quiet_build, write_images
from imgsim.index import store
from imgsim.indexing import indexer
from imgsim.serve import app as app_module
from imgsim.serve import web


@pytest.fixture(params=["sqlite", "postgresql"])
def service_config(request, service_config):
    """Every test here runs on the embedded SQLite store and on PostgreSQL."""
    return on_live_backend(request, service_config)


def _catalogue(cfg) -> list[store.Item]:
    return store.read_items(store.current_version(cfg.index_dir))


def _assert_unique(items: list[store.Item]) -> None:
    ids = [item.id for item in items]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_a_compaction_during_an_upload_never_numbers_its_file_twice(
    client, admin, photos, service_config, monkeypatch, tmp_path
):
    """The upload's file is in uploads/ before its row commits; a rebuild scanning then skips it."""
    kind = type(web.service_of(client.application).live_store)
    real_add = kind.add

    def add_after_a_rebuild(self, addition, floor=0):
        quiet_build(photos, service_config)  # a compaction scans while the file is uncommitted
        return real_add(self, addition, floor)

    monkeypatch.setattr(kind, "add", add_after_a_rebuild)
    new = write_images(tmp_path / "new", 1, seed=5)[0].read_bytes()
    added = admin.add(new).get_json()
    monkeypatch.undo()
    assert added["path"] not in {item.path for item in _catalogue(service_config)}
    quiet_build(photos, service_config)  # the next compaction takes it in, under its own id
    items = _catalogue(service_config)
    _assert_unique(items)
    assert [item.id for item in items if item.path == added["path"]] == [added["id"]]
    time.sleep(service_config.reload_interval + 0.05)
    assert client.get(f"/images/{added['id']}").data == new


def test_uploads_during_a_folder_rebuild_get_ids_the_rebuild_never_gives(
    client, admin, photos, service_config, monkeypatch, tmp_path
):
    """A worker still on the old version hands out ids while a rebuild numbers new folder files."""
    write_images(photos, 4, seed=3, prefix="more")
    uploads = write_images(tmp_path / "new", 3, seed=6)
    acknowledged: dict[int, bytes] = {}
    real_publish = indexer.publish

    def upload_then_publish(plan, *args, **kwargs):
        for path in uploads:
            acknowledged[admin.add(path.read_bytes()).get_json()["id"]] = path.read_bytes()
        return real_publish(plan, *args, **kwargs)

    monkeypatch.setattr(indexer, "publish", upload_then_publish)
    quiet_build(photos, service_config)
    monkeypatch.undo()
    _assert_unique(_catalogue(service_config))
    assert not set(acknowledged) & {item.id for item in _catalogue(service_config)}
    quiet_build(photos, service_config)  # the next rebuild takes the uploads in
    items = _catalogue(service_config)
    _assert_unique(items)
    assert len(items) == 12 + 4 + 3
    time.sleep(service_config.reload_interval + 0.05)
    for item_id, data in acknowledged.items():
        assert client.get(f"/images/{item_id}").data == data
    for item in items:
        if not item.path.startswith("uploads/"):
            assert client.get(f"/images/{item.id}").data == (photos / item.path).read_bytes()


def test_ids_survive_a_full_rebuild_and_a_model_change(photos, service_config):
    first = quiet_build(photos, service_config)
    before = {item.path: item.id for item in store.read_items(first.version)}
    where = ["--index-dir", str(service_config.index_dir), "--live-url", service_config.live_url]
    assert img2vec.main(["--remove", "0", *where]) == 0
    quiet_build(photos, service_config, full=True)
    full = {item.path: item.id for item in _catalogue(service_config)}
    quiet_build(photos, service_config.replace(image_size=40))  # another model key: new vectors
    changed = {item.path: item.id for item in _catalogue(service_config)}
    kept = {path: item_id for path, item_id in before.items() if item_id != 0}
    assert full == kept
    assert changed == kept


def test_compacted_deletions_no_longer_count_towards_the_threshold(photos, service_config):
    cfg = service_config.replace(compact_threshold=3)
    quiet_build(photos, cfg)
    flask_app = app_module.create_app(cfg)
    admin, svc = AdminActions(flask_app.test_client()), web.service_of(flask_app)
    for item_id in (0, 1, 2):
        assert admin.remove(item_id).status_code == 200
    compaction = svc.compactor.thread
    assert compaction is not None
    compaction.join(timeout=120)
    time.sleep(cfg.reload_interval + 0.05)
    assert svc.catalogue.current()[1].pending == 0
    assert admin.remove(3).status_code == 200
    assert svc.compactor.thread is compaction  # one deletion does not rebuild the whole index


def test_concurrent_deletes_of_one_id_tell_only_one_caller(client, admin):
    store_ = web.service_of(client.application).live_store
    assert store_.delete(5, "img0005.png") is True
    assert store_.delete(5, "img0005.png") is False
    assert admin.remove(5).status_code == 404
