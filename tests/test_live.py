"""Adding and removing images while the service runs: POST/DELETE /images, --add/--remove."""

import io
import subprocess
import sys
import threading
import time

import pytest

import img2vec
from helpers import ADMIN, ROOT, AdminActions, on_live_backend, quiet_build, search_hits, write_images
from imgsim.index import store
from imgsim.live import live
from imgsim.serve import app as app_module
from imgsim.serve import web


@pytest.fixture(params=["sqlite", "postgresql"])
def service_config(request, service_config):
    """Every test here runs on the embedded SQLite store and on PostgreSQL."""
    return on_live_backend(request, service_config)


def test_an_index_directory_refuses_the_other_kind_of_live_store(app, service_config):
    """Two id counters (SQLite here, PostgreSQL there) would hand out the same ids: refused."""
    other = "" if service_config.live_url else "postgresql://nobody@127.0.0.1:9/none"
    with pytest.raises(live.StoreUnavailable, match="keeps its live changes and ids in"):
        live.open_store(service_config.index_dir, other)


def test_an_index_directory_from_before_the_kind_was_recorded_stays_on_sqlite(tmp_path):
    """An older index has live.sqlite and no record: PostgreSQL would start a second id counter."""
    (tmp_path / "live.sqlite").write_bytes(b"")
    with pytest.raises(live.StoreUnavailable, match="in sqlite: unset IMGSIM_LIVE_URL"):
        live.open_store(tmp_path, "postgresql://nobody@127.0.0.1:9/none")


def live_flags(cfg) -> list[str]:
    return ["--live-url", cfg.live_url] if cfg.live_url else []


def test_changes_need_the_admin_token(client, photos, service_config):
    data = (photos / "img0001.png").read_bytes()
    reply = client.post(
        "/images", data={"image": (io.BytesIO(data), "a.png")}, headers={"Authorization": "Bearer no"}
    )
    assert reply.status_code == 401 and reply.get_json()["code"] == "unauthorized"
    assert client.delete("/images/1").status_code == 401
    closed = app_module.create_app(service_config.replace(admin_token="")).test_client()
    reply = closed.delete("/images/1", headers=ADMIN)
    assert reply.status_code == 403 and reply.get_json()["code"] == "disabled"


def test_an_added_image_is_found_at_rank_one_by_the_next_request(client, admin, photos, tmp_path):
    new = write_images(tmp_path / "new", 1, seed=42)[0].read_bytes()
    began = time.perf_counter()
    reply = admin.add(new, name="../../etc/evil.png", metadata='{"album": "summer"}')
    assert reply.status_code == 201, reply.get_json()
    added = reply.get_json()
    hits = search_hits(client, new)
    took = time.perf_counter() - began
    assert hits[0]["id"] == added["id"] and hits[0]["distance"] < 1e-3, took
    assert added["path"].startswith("uploads/") and "evil" not in added["path"]
    assert added["metadata"] == {"album": "summer", "original_name": "../../etc/evil.png"}
    assert (photos / added["path"]).read_bytes() == new  # stored in the collection, our name
    assert client.get(added["url"]).data == new
    assert client.get(f"/thumbs/{added['id']}").status_code == 200
    assert client.get(f"/search?id={added['id']}&format=json").status_code == 200
    assert client.get("/healthz").status_code == 200
    body = client.post("/search", data=new, content_type="image/png").get_json()
    assert body["index"]["items"] == 13


def test_bad_additions_store_nothing(admin, photos):
    assert admin.add(b"not an image").get_json()["code"] == "not_an_image"
    reply = admin.add((photos / "img0001.png").read_bytes(), metadata="[1, 2]")
    assert reply.get_json()["code"] == "bad_metadata"
    assert not (photos / "uploads").exists() or not list((photos / "uploads").iterdir())


def test_a_removed_image_never_comes_back(client, admin, photos, service_config, tmp_path):
    cfg = service_config
    data = (photos / "img0005.png").read_bytes()
    victim = search_hits(client, data)[0]["id"]
    reply = admin.remove(victim)
    assert reply.status_code == 200 and reply.get_json()["path"] == "img0005.png"
    assert victim not in [h["id"] for h in search_hits(client, data, k=12)]
    assert all(
        victim not in [h["id"] for h in client.get(f"/search?id={i}&k=11&format=json").get_json()["results"]]
        for i in range(12)
        if i != victim
    )
    assert client.get(f"/images/{victim}").status_code == 404
    assert admin.remove(victim).status_code == 404
    # a live addition can be removed too
    new = write_images(tmp_path / "new", 1, seed=8)[0].read_bytes()
    added = admin.add(new).get_json()["id"]
    assert admin.remove(added).status_code == 200
    assert added not in [h["id"] for h in search_hits(client, new, k=12)]
    # the folder is still the source of truth, and deletions stay deleted there too
    report = quiet_build(photos, cfg)
    ids = {item.path: item.id for item in store.read_items(report.version)}
    assert "img0005.png" not in ids and report.embedded == 0


def test_k_results_survive_when_most_neighbours_are_removed(client, admin, photos):
    data = (photos / "img0000.png").read_bytes()
    nearest = [hit["id"] for hit in search_hits(client, data, k=12)]
    for victim in nearest[:8]:  # more tombstones among the neighbours than Annoy's first margin
        assert admin.remove(victim).status_code == 200
    assert [hit["id"] for hit in search_hits(client, data, k=4)] == nearest[8:]


def test_changes_survive_a_restart_and_a_rebuild_keeps_their_ids(admin, photos, service_config, tmp_path):
    cfg = service_config
    new = write_images(tmp_path / "new", 2, seed=9)
    ids = [admin.add(path.read_bytes()).get_json()["id"] for path in new]
    admin.remove(3)
    restarted = app_module.create_app(cfg).test_client()
    assert search_hits(restarted, new[1].read_bytes())[0]["id"] == ids[1]
    assert 3 not in [h["id"] for h in search_hits(restarted, (photos / "img0003.png").read_bytes(), k=12)]
    report = quiet_build(photos, cfg)  # what compaction runs: uploads are reused, not re-embedded
    assert report.embedded == 0 and report.items == 13
    catalogue = {item.id: item.path for item in store.read_items(report.version)}
    assert all(catalogue[i].startswith("uploads/") for i in ids)
    again_app = app_module.create_app(cfg)
    again = again_app.test_client()
    svc = web.service_of(again_app)
    assert svc.catalogue.current()[1].additions == []  # searched from the base now
    assert search_hits(again, new[0].read_bytes())[0]["id"] == ids[0]


def test_an_index_built_from_a_glob_keeps_its_uploads(tmp_path, service_config):
    photos = tmp_path / "photos"
    write_images(photos, 6)
    write_images(photos, 2, seed=3, prefix="other")
    pattern = str(photos / "img*.png")  # uploads/ is outside this glob
    cfg = service_config
    first = quiet_build(pattern, cfg)
    assert first.items == 6 and store.read_manifest(first.version).dataset == pattern
    client = app_module.create_app(cfg).test_client()
    new = write_images(tmp_path / "new", 1, seed=77)[0]
    added = AdminActions(client).add(new.read_bytes()).get_json()
    report = quiet_build(pattern, cfg)  # what compaction runs
    assert report.items == 7 and report.embedded == 0
    ids = {item.id for item in store.read_items(report.version)}
    assert added["id"] in ids


def test_a_worker_still_on_the_old_version_finds_additions_after_compaction(
    app, photos, service_config, tmp_path
):
    cfg = service_config
    slow = app_module.create_app(cfg.replace(reload_interval=600))  # keeps its version for now
    client = slow.test_client()
    new = write_images(tmp_path / "new", 1, seed=88)[0].read_bytes()
    added = AdminActions(client).add(new).get_json()["id"]
    before = client.post("/search", data=new, content_type="image/png").get_json()["index"]["version"]
    quiet_build(photos, cfg)  # a compaction published by another worker
    body = client.post("/search", data=new, content_type="image/png").get_json()
    assert body["index"]["version"] == before and body["results"][0]["id"] == added


def test_a_worker_that_cannot_load_the_new_version_keeps_finding_what_it_absorbed(
    app, photos, service_config, tmp_path, monkeypatch
):
    """Its view read additions compacted in the last RECENT_S (120 s) only: past that, the ones the
    new version took in dropped out of the answers of a worker still on the old one."""
    monkeypatch.setattr(live, "RECENT_S", 0.5)
    slow = app_module.create_app(service_config.replace(reload_interval=600))  # stays on its version
    client = slow.test_client()
    new = write_images(tmp_path / "new", 1, seed=89)[0].read_bytes()
    added = AdminActions(client).add(new).get_json()["id"]
    before = client.post("/search", data=new, content_type="image/png").get_json()["index"]["version"]
    quiet_build(photos, service_config)  # another worker's compaction takes the addition in
    time.sleep(1.0)  # longer ago than RECENT_S
    AdminActions(client).remove(0)  # any change: the view is read again
    body = client.post("/search", data=new, content_type="image/png").get_json()
    assert body["index"]["version"] == before and body["results"][0]["id"] == added


def test_concurrent_adds_and_searches_lose_nothing(app, tmp_path):
    flask_app = app
    files = write_images(tmp_path / "new", 12, seed=21)
    added, failures = [], []

    def adder(chunk):
        client = flask_app.test_client()
        for path in chunk:
            reply = AdminActions(client).add(path.read_bytes(), name=path.name)
            (added if reply.status_code == 201 else failures).append((path, reply.get_json()))

    def searcher():
        client = flask_app.test_client()
        for _ in range(10):
            reply = client.post("/search", data=files[0].read_bytes(), content_type="image/png")
            if reply.status_code != 200:
                failures.append(reply.get_json())

    threads = [threading.Thread(target=adder, args=(files[i::3],)) for i in range(3)]
    threads += [threading.Thread(target=searcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(added) == 12
    assert len({body["id"] for _, body in added}) == 12
    client = flask_app.test_client()
    for path, body in added:
        assert search_hits(client, path.read_bytes())[0]["id"] == body["id"]


def test_a_crash_after_the_log_write_loses_nothing_and_compaction_resumes(
    app, photos, service_config, tmp_path
):
    cfg = service_config
    files = write_images(tmp_path / "new", 3, seed=31)
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); import img2vec; "
        "code = img2vec.main(sys.argv[2:]); "
        "os.kill(os.getpid(), 9)"  # die before anything else can run
    )
    where = ["--index-dir", str(cfg.index_dir), *live_flags(cfg)]
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), *where, "--add", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -9 and result.stdout.count("added") == 3, result.stderr
    before = store.current_version(cfg.index_dir)

    resumed = app_module.create_app(cfg.replace(compact_threshold=3))  # over the threshold at start
    client = resumed.test_client()
    compactor = web.service_of(resumed).compactor
    assert compactor.thread is not None
    hits_during = [search_hits(client, files[i % 3].read_bytes())[0] for i in range(6)]  # while it runs
    compactor.thread.join(timeout=120)
    after = store.current_version(cfg.index_dir)
    assert after != before
    assert store.read_manifest(after).items == 15
    assert {h["path"] for h in hits_during} <= {f"uploads/{p.name}" for p in (photos / "uploads").iterdir()}
    time.sleep(cfg.reload_interval + 0.05)
    for path in files:
        assert search_hits(client, path.read_bytes())[0]["path"].startswith("uploads/")


def test_requests_during_compaction_all_succeed(app, photos, service_config, tmp_path):
    cfg = service_config
    flask_app = app_module.create_app(cfg.replace(compact_threshold=2))
    client = flask_app.test_client()
    files = write_images(tmp_path / "new", 2, seed=51)
    replies, stop = [], threading.Event()

    def hammer():
        own = flask_app.test_client()
        while not stop.is_set():
            replies.append(own.post("/search?k=5", data=files[0].read_bytes(), content_type="image/png"))
            replies.append(own.get("/search?id=2&k=5&format=json"))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for path in files:
            assert AdminActions(client).add(path.read_bytes()).status_code == 201
        compactor = web.service_of(flask_app).compactor
        assert compactor.thread is not None
        compactor.thread.join(timeout=120)
        time.sleep(cfg.reload_interval + 0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert replies and all(reply.status_code == 200 for reply in replies)
    assert store.read_manifest(store.current_version(cfg.index_dir)).items == 14
    assert (
        client.post("/search", data=files[1].read_bytes(), content_type="image/png").get_json()["index"][
            "items"
        ]
        == 14
    )


def test_command_line_add_and_remove(app, photos, service_config, tmp_path):
    cfg = service_config
    new = write_images(tmp_path / "new", 1, seed=61)[0]
    where = ["--index-dir", str(cfg.index_dir), *live_flags(cfg)]
    assert img2vec.main(["--add", str(new), *where]) == 0
    assert img2vec.main(["--remove", "4", *where]) == 0
    assert img2vec.main(["--remove", "999", *where]) == 1
    client = app_module.create_app(cfg).test_client()
    assert search_hits(client, new.read_bytes())[0]["path"].startswith("uploads/")
    assert 4 not in [h["id"] for h in search_hits(client, (photos / "img0004.png").read_bytes(), k=12)]


@pytest.mark.parametrize(
    "metadata",
    [
        "[" * 1000 + "]" * 1000,
        '{"a": ' * 1000 + "1" + "}" * 1000,
        '{"x": NaN}',
        '{"x": Infinity}',
        '{"d": ' * 17 + "1" + "}" * 17,
    ],
    ids=["list-1000-deep", "object-1000-deep", "nan", "infinity", "17-deep"],
)
def test_metadata_that_json_cannot_carry_is_refused(admin, photos, metadata):
    reply = admin.add((photos / "img0001.png").read_bytes(), metadata=metadata)
    assert reply.status_code == 400 and reply.get_json()["code"] == "bad_metadata"


def test_an_oversized_form_field_is_named_with_its_own_limit(photos, service_config):
    client = app_module.create_app(service_config.replace(max_upload_bytes=20 * 2**20)).test_client()
    reply = AdminActions(client).add(
        (photos / "img0001.png").read_bytes(), metadata='{"a": "' + "x" * 600_000 + '"}'
    )
    assert reply.status_code == 413 and reply.get_json()["code"] == "too_large"
    assert "form field" in reply.get_json()["error"] and "500,000 bytes" in reply.get_json()["error"]


def test_a_workers_view_does_not_read_additions_compacted_long_ago(
    app, admin, photos, service_config, tmp_path
):
    """Each change re-read an hour of absorbed additions: worker memory grew with the upload rate."""
    new = write_images(tmp_path / "new", 1, seed=21)[0].read_bytes()
    added = admin.add(new).get_json()["id"]
    quiet_build(photos, service_config)  # a compaction takes it in
    live_store = web.service_of(app).live_store
    assert added in {a.id for a in live_store.read().additions.values()}  # kept for slower workers
    assert added in {a.id for a in live_store.read(compacted_since=time.time() - 60).additions.values()}
    assert not live_store.read(compacted_since=time.time()).additions


def test_deleted_additions_are_not_read_back(app, admin, tmp_path):
    """Adds and deletes that cancel out re-read every image ever added on every change (and held
    it in memory) until a compaction: the store now leaves deleted additions out."""
    live_store = web.service_of(app).live_store
    for path in write_images(tmp_path / "new", 6, seed=23):
        added = admin.add(path.read_bytes()).get_json()["id"]
        assert admin.remove(added).status_code == 200
    state = live_store.read()
    assert state.additions == {} and len(state.deletions) == 6


def test_a_workers_view_reads_only_the_deletions_its_version_has_not_applied(
    app, admin, photos, service_config
):
    """Every change re-read every tombstone ever made, so the service slowed as deletions piled up
    (160 to 90 requests/s over a 10-minute soak): a version's build already applied the older ones."""
    assert admin.remove(3).status_code == 200
    quiet_build(photos, service_config)  # applies the deletion: id 3 is not in the new version
    assert admin.remove(4).status_code == 200
    live_store = web.service_of(app).live_store
    manifest = store.read_manifest(store.current_version(service_config.index_dir))
    assert set(live_store.read().deletions) == {3, 4}
    assert set(live_store.read(deleted_since=manifest.live_read_at).deletions) == {4}


def test_a_compaction_that_cannot_run_now_is_not_retried_on_every_change(app):
    """While another worker compacted, every change here started a thread that found the build
    lock taken: 3,523 such attempts in a 10-minute soak. Now it waits before trying again."""
    compactor = web.service_of(app).compactor
    attempts = []

    def busy(*args, **kwargs):
        attempts.append(1)
        raise store.BuildInProgress("another rebuild is running")

    compactor.compact = busy
    snap, _ = web.service_of(app).catalogue.current()
    over_the_threshold = live.LiveView(hidden=frozenset(range(compactor.cfg.compact_threshold)))
    for _ in range(20):
        compactor.maybe_start(snap, over_the_threshold)
        compactor.thread.join()
    assert len(attempts) == 1


def test_the_compactor_keeps_publishing_after_the_version_it_started_on_is_pruned(
    photos, service_config, tmp_path, monkeypatch
):
    """A worker's model came from the first version's converted copy; once keep_versions pruned that
    version, every compaction failed copying it (FileNotFoundError) and the delta grew without end."""
    cfg = service_config.replace(compact_threshold=1, keep_versions=1)
    monkeypatch.setattr(store, "RETIRED_GRACE_S", 0.0)  # pruned at once, as if long replaced
    quiet_build(photos, cfg)
    first = store.current_version(cfg.index_dir)
    flask_app = app_module.create_app(cfg)
    client, compactor = flask_app.test_client(), web.service_of(flask_app).compactor
    published = []
    for path in write_images(tmp_path / "new", 4, seed=60):
        assert AdminActions(client).add(path.read_bytes()).status_code == 201
        assert compactor.thread is not None
        compactor.thread.join(timeout=120)
        published.append(store.current_version(cfg.index_dir))
        time.sleep(cfg.reload_interval + 0.1)  # the worker moves on to the version just published
        assert client.get("/healthz").get_json()["version"] == published[-1].name
    assert not first.exists() and len(set(published)) == 4  # more compactions than versions kept
    assert store.read_manifest(published[-1]).items == 16
    assert (published[-1] / "openvino").is_dir()  # the new version carries its model: no TensorFlow
    web.service_of(flask_app).close()


def test_failing_compactions_back_off_and_say_so_in_healthz_and_metrics(app, service_config, tmp_path):
    flask_app = app_module.create_app(service_config.replace(compact_threshold=1))
    client, svc = flask_app.test_client(), web.service_of(flask_app)

    def broken(*args, **kwargs):
        raise OSError("the disk is full")

    svc.compactor.compact = broken
    waits = []
    for path in write_images(tmp_path / "new", 3, seed=61):
        svc.compactor._retry_at = 0.0  # as if each wait had passed
        assert AdminActions(client).add(path.read_bytes()).status_code == 201
        svc.compactor.thread.join(timeout=60)
        waits.append(svc.compactor._retry_at - time.monotonic())
    assert waits[0] < waits[1] < waits[2] and waits[2] > 3.5  # 1 s, 2 s, 4 s
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["compaction"] == "failing (3 in a row)"
    assert "imgsim_compaction_failures 3.0" in client.get("/metrics").get_data(as_text=True)
    svc.close()
