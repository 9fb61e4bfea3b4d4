"""Several replicas, one collection: two gunicorn servers on one index directory and one PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import servers
from helpers import ADMIN, TOKEN, quiet_build, write_images
from imgsim import config
from imgsim.index import store
from imgsim.search import annoy_index

pytestmark = pytest.mark.slow  # two gunicorn replicas on PostgreSQL


@dataclass
class Replica:
    url: str
    process: object

    def add(self, data: bytes) -> int:
        reply = requests.post(
            f"{self.url}/images", files={"image": ("a.png", data)}, headers=ADMIN, timeout=60
        )
        assert reply.status_code == 201, reply.text
        return reply.json()["id"]

    def top_hit(self, data: bytes) -> int:
        reply = requests.post(
            f"{self.url}/search?k=3", data=data, headers={"Content-Type": "image/png"}, timeout=60
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["results"][0]["id"]

    def image(self, item_id: int) -> requests.Response:
        return requests.get(f"{self.url}/images/{item_id}", timeout=60)

    def version(self) -> str:
        return requests.get(f"{self.url}/healthz", timeout=60).json()["version"]

    def metric(self, name: str, **labels) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=60).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )


@pytest.fixture
def shared(tmp_path, tiny_config, live_url) -> config.Config:
    """One index directory and one PostgreSQL database for two replicas, and 12 photos indexed."""
    write_images(tmp_path / "photos", 12)
    cfg = tiny_config.replace(admin_token=TOKEN, reload_interval=0.2, live_url=live_url)
    quiet_build(tmp_path / "photos", cfg)
    return cfg


@contextlib.contextmanager
def replicas(cfg: config.Config, log_dir, count: int = 2):
    """``count`` gunicorn servers (one worker each) on the same configuration, started in parallel."""
    configs = [cfg.replace(bind=f"127.0.0.1:{servers.free_port()}") for _ in range(count)]
    processes = [servers.start_gunicorn(c, log=log_dir / f"replica{n}.log") for n, c in enumerate(configs)]
    try:
        for c, process in zip(configs, processes, strict=True):
            servers.wait_until_up(f"http://{c.bind}/healthz", process)
        yield [Replica(f"http://{c.bind}", p) for c, p in zip(configs, processes, strict=True)]
    finally:
        for process in processes:
            servers.stop(process)


def test_a_change_through_one_replica_is_seen_by_the_other_on_its_next_request(shared, tmp_path):
    new = write_images(tmp_path / "new", 1, seed=42)[0].read_bytes()
    with replicas(shared, tmp_path) as (a, b):
        added = a.add(new)
        assert b.top_hit(new) == added
        assert b.image(added).content == new
        assert requests.delete(f"{b.url}/images/{added}", headers=ADMIN, timeout=60).status_code == 200
        assert a.image(added).status_code == 404
        assert a.top_hit(new) != added


def test_four_threads_adding_through_both_replicas_get_unique_ids_and_lose_nothing(shared, tmp_path):
    images = write_images(tmp_path / "new", 24, seed=7)
    acknowledged: dict[int, bytes] = {}
    lock = threading.Lock()
    with replicas(shared, tmp_path) as (a, b):

        def add_some(replica: Replica, paths) -> None:
            for path in paths:
                item_id = replica.add(path.read_bytes())
                with lock:
                    assert item_id not in acknowledged, f"id {item_id} given twice"
                    acknowledged[item_id] = path.read_bytes()

        work = [(a, images[0::4]), (b, images[1::4]), (a, images[2::4]), (b, images[3::4])]
        threads = [threading.Thread(target=add_some, args=job) for job in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(acknowledged) == 24
        for item_id, data in acknowledged.items():
            assert a.image(item_id).content == data and b.image(item_id).content == data


def test_kill_9_of_both_replicas_right_after_the_answer_loses_nothing(shared, tmp_path):
    images = [p.read_bytes() for p in write_images(tmp_path / "new", 4, seed=9)]
    with replicas(shared, tmp_path) as (a, b):
        acknowledged = {a.add(images[0]): images[0], b.add(images[1]): images[1]}
        acknowledged |= {a.add(images[2]): images[2], b.add(images[3]): images[3]}
        servers.kill_group(a.process)
        servers.kill_group(b.process)
    with replicas(shared, tmp_path) as (a, b):
        for item_id, data in acknowledged.items():
            assert a.image(item_id).content == data and b.image(item_id).content == data
            assert b.top_hit(data) == item_id


def test_exactly_one_replica_compacts_and_both_serve_the_new_version(shared, tmp_path):
    cfg = shared.replace(compact_threshold=6)
    images = [p.read_bytes() for p in write_images(tmp_path / "new", 6, seed=11)]
    with replicas(cfg, tmp_path) as (a, b):
        first = a.version()
        added = [(a if n % 2 else b).add(data) for n, data in enumerate(images)]
        deadline = time.monotonic() + 120
        while {a.version(), b.version()} == {first} and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # both replicas have looked at their delta again since
        assert a.version() == b.version() != first
        published = a.metric("imgsim_compactions_total", outcome="published")
        published += b.metric("imgsim_compactions_total", outcome="published")
        assert published == 1
        versions = [p for p in (cfg.index_dir / "versions").iterdir() if p.is_dir()]
        assert len(versions) == 2
        for item_id, data in zip(added, images, strict=True):
            assert a.image(item_id).content == data and b.top_hit(data) == item_id


def _end_the_lock_session(url: str) -> None:
    """What a dropped connection does: the server ends the session that holds the compaction lock."""
    import psycopg

    from imgsim.live import pgstore

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (pgstore.COMPACTION_LOCK,),  # this test's database only: other tests' servers keep theirs
        )


def test_a_compaction_that_lost_its_lock_does_not_publish(shared):
    """The lock went with its connection without notice, and another replica could compact at once."""
    from imgsim.indexing import indexer
    from imgsim.live import live
    from imgsim.serve import compaction

    live_store = live.open_store(shared.index_dir, shared.live_url)
    with live_store.compaction_lock() as mine:
        assert mine and live_store.holds_compaction_lock()
        _end_the_lock_session(shared.live_url)
        assert not live_store.holds_compaction_lock()

    def build_while_the_connection_drops(*args, **kwargs):
        _end_the_lock_session(shared.live_url)
        return indexer.compact(*args, **kwargs)

    before = store.current_version(shared.index_dir)
    compactor = compaction.Compactor(
        shared, build_while_the_connection_drops, live_store, logging.getLogger("t")
    )
    snap = type("Snap", (), {"index": annoy_index.open_index(shared.index_dir), "embedder": None})()
    first = snap.index.items[0]
    assert live_store.delete(first.id, first.path)  # something for the compaction to publish
    compactor._run(snap)
    assert compactor.failures == 1 and store.current_version(shared.index_dir) == before
    live_store.close()
