"""A version is a list of immutable segments: a change writes what it changes, merges are tiered."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, quiet_build, write_images
from imgsim import durable
from imgsim.index import merge_policy, segments, store
from imgsim.index.depth import EXACT
from imgsim.index.merge_policy import MergePolicy
from imgsim.index.store import SegmentRef
from imgsim.search import annoy_index


def _refs(*sizes: int, deleted: dict[int, int] | None = None) -> list[SegmentRef]:
    deleted = deleted or {}
    return [SegmentRef(f"s{n}", size, tuple(range(deleted.get(n, 0)))) for n, size in enumerate(sizes)]


def _segments(version) -> list[SegmentRef]:
    return store.read_segments(version)


def _inode(version, ref: SegmentRef, name: str = "vectors.npy") -> int:
    return (store.segment_dir(version, ref.name) / name).stat().st_ino


# --- the merge policy -------------------------------------------------------------------------


def test_a_tier_merges_once_it_holds_per_tier_segments():
    policy = MergePolicy(per_tier=4, max_items=10_000, floor_items=10)
    assert merge_policy.merges(_refs(5, 5, 5), policy) == []
    assert merge_policy.merges(_refs(5, 5, 5, 5), policy) == [["s0", "s1", "s2", "s3"]]


def test_segments_of_different_tiers_are_not_merged_together():
    policy = MergePolicy(per_tier=4, max_items=100_000, floor_items=10)
    assert merge_policy.merges(_refs(5, 5, 5, 500), policy) == []


def test_a_merge_that_fills_a_tier_cascades_into_one_merge():
    policy = MergePolicy(per_tier=2, max_items=100_000, floor_items=10)
    planned = merge_policy.merges(_refs(20, 10, 10), policy)  # 10 + 10 make a second 20
    assert sorted(map(sorted, planned)) == [["s0", "s1", "s2"]]


def test_no_merge_writes_a_segment_above_the_size_limit():
    policy = MergePolicy(per_tier=3, max_items=100, floor_items=1)
    planned = merge_policy.merges(_refs(40, 40, 40), policy)
    assert planned == [["s0", "s1"]] or planned == []
    assert all(sum((40,) * len(group)) <= 100 for group in planned)


def test_a_segment_with_too_many_deletions_is_rewritten_and_an_emptied_one_dropped():
    policy = MergePolicy(per_tier=10, max_items=10_000, floor_items=10, deletes_allowed=0.25)
    assert merge_policy.merges(_refs(100, 100, deleted={0: 20}), policy) == []
    assert merge_policy.merges(_refs(100, 100, deleted={0: 30}), policy) == [["s0"]]
    assert merge_policy.merges(_refs(100, 4, deleted={1: 4}), policy) == [["s1"]]


def test_forced_merging_packs_into_the_fewest_segments_the_limit_allows():
    policy = MergePolicy(per_tier=10, max_items=100, floor_items=1)
    refs = _refs(100, 30, 30, 30, 20, 10)
    planned = merge_policy.merges(refs, policy, force=True)
    sizes = {ref.name: ref.live for ref in refs}
    merged = {name for group in planned for name in group}
    assert all(sum(sizes[n] for n in group) <= 100 for group in planned)
    assert len(planned) + len(set(sizes) - merged) == 3  # 100 | 90 | 30: no fewer can hold 220 in 100s
    assert "s0" not in merged  # full and clean: left alone


# --- builds -----------------------------------------------------------------------------------


def test_a_rebuild_writes_only_the_new_files_and_links_the_rest(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 10)
    first = quiet_build(photos, tiny_config).version
    [old] = _segments(first)
    write_images(photos, 3, seed=5, prefix="more")
    second = quiet_build(photos, tiny_config)
    kept, new = _segments(second.version)
    assert second.embedded == 3 and (kept.name, kept.count, new.count) == (old.name, 10, 3)
    for name in ("vectors.npy", "index.ann", "items.json"):  # the same file: linked, not rewritten
        assert _inode(second.version, kept, name) == _inode(first, old, name)
    index = annoy_index.open_index(tiny_config.index_dir)
    for row, item in enumerate(index.items):  # every image, old or new, finds itself first
        assert index.search_reduced(index.stored_vector(row), k=1)[0].id == item.id


def test_a_changed_or_removed_file_becomes_a_tombstone_and_keeps_its_id(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    paths = write_images(photos, 10)
    first = annoy_index.open_index(quiet_build(photos, tiny_config).version.parent.parent)
    ids = {item.path: item.id for item in first.items}
    paths[0].unlink()
    write_images(photos, 1, seed=9)  # img0000.png again, with other pixels
    paths[1].unlink()
    report = quiet_build(photos, tiny_config)
    kept, new = _segments(report.version)
    assert kept.deleted == (0, 1) and new.count == 1
    index = annoy_index.open_index(tiny_config.index_dir)
    ids.pop("img0001.png")
    assert {item.path: item.id for item in index.items} == ids
    changed = index.rows_by_id[ids["img0000.png"]]
    hits = index.search_reduced(index.stored_vector(changed), k=len(index.items))
    assert hits[0].id == ids["img0000.png"] and {h.id for h in hits} == set(ids.values())


def test_search_over_segments_finds_what_one_segment_finds(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 24)
    cfg = tiny_config.replace(segment_items=7)
    split = quiet_build(photos, cfg).version
    assert [ref.count for ref in _segments(split)] == [7, 7, 7, 3]
    index = annoy_index.open_index(cfg.index_dir)
    queries = [index.stored_vector(row) + 0.05 for row in range(0, 24, 3)]
    answers = [[h.id for h in index.search_reduced(q, k=5, depth=EXACT)] for q in queries]  # exact
    merged = quiet_build(photos, cfg.replace(segment_items=100), merge=True)
    assert len(_segments(merged.version)) == 1 and merged.embedded == 0
    one = annoy_index.open_index(cfg.index_dir)
    assert [[h.id for h in one.search_reduced(q, k=5, depth=EXACT)] for q in queries] == answers
    assert [[h.id for h in one.search_reduced(q, k=5)] for q in queries] == answers


class _Depths:
    """An Annoy index that notes the search_k each search asked for."""

    def __init__(self, annoy, asked: list[int]):
        self.annoy, self.asked = annoy, asked

    def get_nns_by_vector(self, vector, n, search_k=-1, include_distances=False):
        self.asked.append(search_k)
        return self.annoy.get_nns_by_vector(vector, n, search_k=search_k, include_distances=include_distances)


def _searched_depths(version: Path, sizes: tuple[int, ...], depth) -> list[list[int]]:
    """The search_k each segment of ``sizes`` (each tuned to 8,000) is searched at for ``depth``."""
    rng, start, refs = np.random.default_rng(0), 0, []
    for n, size in enumerate(sizes):
        vectors = rng.normal(size=(size, 8)).astype(np.float32)
        items = [store.Item(start + i, f"{start + i}.jpg", 1, 1, f"{start + i:040x}") for i in range(size)]
        folder = store.segment_dir(version, f"s{n}")
        segments.write(folder, items, vectors, vectors, "angular", trees=10)
        segments.describe(folder, size, 8_000)
        refs.append(SegmentRef(f"s{n}", size))
        start += size
    store.write_segments(version, refs)
    opened = segments.Segments(version, 8, "angular", trees=10)
    asked: list[list[int]] = [[] for _ in sizes]
    for part, noted in zip(opened.parts, asked, strict=True):
        part.annoy = _Depths(part.annoy, noted)
    opened.nearest(np.ones(8, np.float32), 10, depth)
    return asked


def test_segments_share_the_depth_by_their_size(tmp_path):
    """Issue 34: each segment was searched at its full tuned depth, so that four segments of 250,000
    cost 3.5 times one (28 ms at 1M); a segment holding a quarter of the items is searched at twice
    its share, half its depth."""
    from imgsim.index.depth import SHALLOW, TUNED, Depth

    assert _searched_depths(tmp_path / "a", (400, 400, 400, 400), TUNED) == [[4_000]] * 4
    big, small = _searched_depths(tmp_path / "b", (2_000, 100), TUNED)
    assert big == [8_000] and small == [round(8_000 * 2 * 100 / 2_100)]
    assert _searched_depths(tmp_path / "c", (400, 400, 400, 400), SHALLOW) == [[10 * 10 // 2]] * 4
    assert _searched_depths(tmp_path / "d", (2_000,), SHALLOW) == [[-1]]  # Annoy's own, as before
    assert _searched_depths(tmp_path / "e", (400, 400), Depth.of(5_000)) == [[5_000]] * 2  # as asked


def test_small_additions_are_merged_by_the_tier_policy(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 10)
    cfg = tiny_config.replace(segments_per_tier=3)
    quiet_build(photos, cfg)
    counts = []
    for batch in range(3):
        write_images(photos, 2, seed=20 + batch, prefix=f"batch{batch}-")
        counts.append([ref.count for ref in _segments(quiet_build(photos, cfg).version)])
    # below floor_items (1,000) every segment is in the lowest tier: the third fills it, one merge
    assert counts == [[10, 2], [14], [14, 2]]
    assert len(annoy_index.open_index(cfg.index_dir).items) == 16


def test_full_rewrites_every_segment(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 6)
    first = quiet_build(photos, tiny_config).version
    again = quiet_build(photos.parent / "photos", tiny_config, full=True).version
    assert {r.name for r in _segments(first)}.isdisjoint({r.name for r in _segments(again)})


def test_a_compaction_writes_the_uploads_as_one_new_segment(photos, service_config):
    from helpers import AdminActions, png
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    quiet_build(photos, service_config)
    before = store.current_version(service_config.index_dir)
    flask_app = app_module.create_app(service_config.replace(compact_threshold=3))
    admin = AdminActions(flask_app.test_client())
    added = [admin.add(png(colour=(60 * n, 200, 10)), name=f"new{n}.png").get_json()["id"] for n in range(3)]
    compactor = web.service_of(flask_app).compactor
    assert compactor.thread is not None
    compactor.thread.join(timeout=120)
    after = store.current_version(service_config.index_dir)
    [old], [kept, new] = _segments(before), _segments(after)
    assert kept.name == old.name and _inode(after, kept) == _inode(before, old) and new.count == 3
    assert {item.id for item in store.items_of(after, [new])} == set(added)


def test_a_format_1_version_is_still_read_and_the_next_build_rewrites_it(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 5)
    version = quiet_build(photos, tiny_config).version
    [ref] = _segments(version)
    folder = store.segment_dir(version, ref.name)
    for path in folder.iterdir():  # the layout before segments: one index at the version's top
        os.replace(path, version / path.name)
    (version / store.SEGMENTS_FILE).unlink()
    manifest = durable.read_json(version / "manifest.json") | {"format_version": 1}
    durable.write_json(version / "manifest.json", manifest)
    index = annoy_index.open_index(tiny_config.index_dir)
    assert len(index.items) == 5
    assert index.search_reduced(index.stored_vector(2), k=1)[0].id == index.items[2].id
    write_images(photos, 1, seed=4, prefix="new")
    rebuilt = quiet_build(photos, tiny_config)
    assert rebuilt.items == 6 and len(_segments(rebuilt.version)) == 1


DIE_AFTER = """
import importlib, os, signal, sys
module, name = sys.argv[1].split(":")
module = importlib.import_module(module)
original = getattr(module, name)

def then_die(*args, **kwargs):
    original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9, at exactly this point

setattr(module, name, then_die)
if sys.argv[2] == "compact":  # what a serving worker's compaction runs, configured by IMGSIM_*
    from imgsim import config
    from imgsim.indexing import indexer

    indexer.build_index(sys.argv[3], config.load(), progress=False, delta_only=True)
else:
    from imgsim.cli import index

    sys.exit(index.main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "point",
    [
        "imgsim.indexing.segment_layout:_write_one",  # a new segment written, the version not yet published
        "imgsim.indexing.segment_layout:_merge",  # a merge written, not published
        "imgsim.index.store:publish",  # published, the run not yet finished
    ],
)
def test_a_build_or_merge_killed_at_any_point_loses_and_renumbers_nothing(tmp_path, tiny_config, point):
    photos = tmp_path / "photos"
    write_images(photos, 6)
    cfg = tiny_config.replace(segment_items=3, precision="f32")  # as the command line asks
    quiet_build(photos, cfg)
    write_images(photos, 4, seed=7, prefix="more")
    before = quiet_build(photos, cfg).version
    ids = {item.path: item.id for item in store.read_items(before)}
    write_images(photos, 2, seed=8, prefix="late")
    command = [
        sys.executable,
        "-c",
        DIE_AFTER,
        point,
        str(photos),
        "--no-progress",
        "--model",
        cfg.model,
        "--image-size",
        "32",
        "--trees",
        "10",
        "--segment-items",
        "100",
        "--index-dir",
        str(cfg.index_dir),
        "--precision",
        "f32",
        "--merge",
    ]
    killed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    published = store.current_version(cfg.index_dir) != before
    assert published == point.endswith("publish")
    survived = {item.path: item.id for item in annoy_index.open_index(cfg.index_dir).items}
    assert {p: i for p, i in survived.items() if p in ids} == ids
    merged = quiet_build(photos, cfg.replace(segment_items=100), merge=True)
    final = {item.path: item.id for item in store.read_items(merged.version)}
    assert {p: i for p, i in final.items() if p in ids} == ids and len(final) == 12
    assert len(set(final.values())) == 12 and all(final[p] == i for p, i in survived.items())
    assert len(_segments(merged.version)) == 1 and np.isfinite(store.read_vectors(merged.version)).all()


@pytest.mark.parametrize("point", ["imgsim.indexing.segment_layout:_write_one", "imgsim.index.store:publish"])
def test_a_compaction_killed_at_any_point_loses_and_renumbers_nothing(photos, service_config, point):
    from helpers import AdminActions, png
    from imgsim import config
    from imgsim.serve import app as app_module

    quiet_build(photos, service_config)
    before = store.current_version(service_config.index_dir)
    admin = AdminActions(app_module.create_app(service_config).test_client())
    added = [admin.add(png(colour=(50 * n, 90, 200)), name=f"n{n}.png").get_json()["id"] for n in range(3)]
    assert admin.remove(store.read_items(before)[0].id).status_code == 200
    environment = os.environ | config.to_environ(service_config)
    killed = subprocess.run(
        [sys.executable, "-c", DIE_AFTER, point, "compact", str(photos)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    published = store.current_version(service_config.index_dir) != before
    assert published == point.endswith("publish")
    client = app_module.create_app(service_config).test_client()
    for item_id in added:  # acknowledged additions: searchable by id, from the delta or the base
        assert client.get(f"/search?id={item_id}&format=json").status_code == 200
    quiet_build(photos, service_config, delta_only=True)  # the next compaction finishes the job
    final = store.read_items(store.current_version(service_config.index_dir))
    assert set(added) <= {item.id for item in final} and len(final) == 12 + 3 - 1
    assert len({item.id for item in final}) == len(final)


def _astronaut(side: int, fmt: str = "PNG") -> bytes:
    """A photo with texture enough for local features (the generated pictures are flat)."""
    import io

    import skimage
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).resize((side, side)).save(buffer, fmt, quality=90)
    return buffer.getvalue()


def _compacted_copy(photos, service_config):
    """The astronaut in the built collection, and the id of a smaller JPEG of it added live."""
    from helpers import AdminActions
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    (photos / "astronaut.png").write_bytes(_astronaut(160))
    quiet_build(photos, service_config)
    application = app_module.create_app(service_config)
    added = AdminActions(application.test_client()).add(_astronaut(120, "JPEG"), name="copy.jpg")
    web.service_of(application).close()
    return added.get_json()["id"]


def _pair_ids(version) -> set[frozenset[int]]:
    from imgsim.duplicates import copy_pairs

    items = store.read_items(version)
    stored = copy_pairs.load(version)
    assert stored is not None
    return {frozenset((items[p.a].id, items[p.b].id)) for p in stored[1] if p.match is not None}


def test_a_compaction_serves_its_additions_before_it_checks_their_copies(photos, service_config, monkeypatch):
    """Issue 34: at 1M vectors checking the additions' copies was 12 of a compaction's 16 s; it
    now comes just after the publish, in the version served, so what a compaction costs before
    its additions are served is its delta's."""
    from imgsim.duplicates import copy_pairs
    from imgsim.indexing import verifying

    added = _compacted_copy(photos, service_config)
    original = next(
        i.id
        for i in store.read_items(store.current_version(service_config.index_dir))
        if i.path == "astronaut.png"
    )
    seen = {}
    check = verifying.check_pending

    def watched(version, cfg, log):
        seen["served"] = store.current_version(cfg.index_dir) == version
        seen["pending"], seen["pairs"] = copy_pairs.pending_of(version), _pair_ids(version)
        check(version, cfg, log)

    monkeypatch.setattr(verifying, "check_pending", watched)
    quiet_build(photos, service_config, delta_only=True)
    assert seen == {"served": True, "pending": {added}, "pairs": set()}
    version = store.current_version(service_config.index_dir)
    assert copy_pairs.pending_of(version) == set()
    assert _pair_ids(version) == {frozenset((original, added))}


def test_copies_left_unchecked_by_a_compaction_are_checked_by_the_next(photos, service_config, monkeypatch):
    """A compaction whose check after the publish fails (or is killed) leaves its additions
    pending in copies.json: the next one checks them, not only its own."""
    from helpers import AdminActions, png
    from imgsim.duplicates import copy_pairs
    from imgsim.indexing import verifying
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    added = _compacted_copy(photos, service_config)

    def fails(version, cfg, log):
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(verifying, "check_pending", fails)
        first = quiet_build(photos, service_config, delta_only=True).version
    assert store.current_version(service_config.index_dir) == first  # published and served all the same
    assert copy_pairs.pending_of(first) == {added} and _pair_ids(first) == set()
    application = app_module.create_app(service_config)
    AdminActions(application.test_client()).add(png(colour=(10, 200, 90)), name="other.png")
    web.service_of(application).close()
    second = quiet_build(photos, service_config, delta_only=True).version
    assert copy_pairs.pending_of(second) == set() and len(_pair_ids(second)) == 1
    assert added in next(iter(_pair_ids(second)))


def test_the_duplicates_page_shows_copies_checked_after_it_read_the_version(
    photos, service_config, monkeypatch
):
    """The page reads a version's pairs once; a compaction's check rewrites them in the same
    version, which the page must then read again, not answer from what it read before."""
    from imgsim.indexing import verifying
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    added = _compacted_copy(photos, service_config)
    check = verifying.check_pending
    with monkeypatch.context() as patched:
        patched.setattr(verifying, "check_pending", lambda version, cfg, log: None)
        version = quiet_build(photos, service_config, delta_only=True).version
    application = app_module.create_app(service_config)
    client = application.test_client()

    def grouped() -> bool:
        reply = client.get("/duplicates?format=json")
        assert reply.status_code == 200, reply.get_json()
        return any(added in [m["id"] for m in group["members"]] for group in reply.get_json()["groups"])

    assert not grouped()
    check(version, service_config, lambda line: None)
    assert grouped()
    web.service_of(application).close()


def test_versions_made_within_one_second_sort_by_age(tmp_path):
    """Compactions now publish several versions a second: pruning kept a random one of them (the
    names were to the second), and the oldest could outlive the newer ones."""
    made = [store.start_version(tmp_path).name for _ in range(20)]
    assert made == sorted(made)


def test_some_rows_are_read_from_the_segments_as_every_row_would_be(tmp_path, tiny_config):
    """store.read_rows (the map's sample) reads only the rows asked for, tombstones skipped."""
    photos = tmp_path / "photos"
    write_images(photos, 14)
    version = quiet_build(photos, tiny_config.replace(segment_items=5)).version
    refs = store.read_segments(version)
    assert len(refs) > 1
    refs[1] = SegmentRef(refs[1].name, refs[1].count, (0, 2))  # two of its rows deleted
    store.write_segments(version, refs)
    every = store.read_vectors(version)
    rows = np.array([0, 4, 5, 6, len(every) - 1])
    assert np.array_equal(store.read_rows(version, rows), every[rows])


def _flip(path: Path, at: int = 4096, count: int = 4096) -> None:
    with open(path, "r+b") as handle:
        handle.seek(min(at, max(0, path.stat().st_size - count)))
        block = handle.read(count)
        handle.seek(-len(block), os.SEEK_CUR)
        handle.write(bytes(b ^ 0xFF for b in block))


def test_a_corrupt_segment_is_refused_not_served(tmp_path, service_config, monkeypatch):
    """4 KB flipped in index.ann gave silently wrong neighbours, a truncated one a misleading
    "not built yet" and, in a review, a crashed worker (hardening item 9): each segment's files are
    recorded (size, SHA-1) at build and checked before a serving worker maps them."""
    from helpers import ADMIN
    from imgsim.serve import app as app_module

    photos = tmp_path / "photos"
    write_images(photos, 12)
    version = quiet_build(photos, service_config).version
    [ref] = store.read_segments(version)
    folder = store.segment_dir(version, ref.name)
    recorded = durable.read_json(folder / segments.SEGMENT_FILE)["files"]
    assert set(recorded) >= {segments.ANNOY_FILE, store.VECTORS_FILE, store.ITEMS_FILE}
    _flip(folder / segments.ANNOY_FILE)
    monkeypatch.setattr(segments, "_SOUND", set())  # as a worker that never checked it
    client = app_module.create_app(service_config).test_client()
    health = client.get("/healthz", headers=ADMIN)
    assert health.status_code == 503 and "SHA-1 differs" in health.get_json()["reason"]
    reply = client.get("/search?id=1&format=json")
    assert reply.status_code == 409 and "failed its checks" in reply.get_json()["error"]


def test_a_corrupt_newer_version_leaves_the_older_one_serving_and_is_not_read_again(
    tmp_path, service_config, monkeypatch
):
    from helpers import ADMIN
    from imgsim.serve import app as app_module

    photos = tmp_path / "photos"
    write_images(photos, 12)
    cfg = service_config.replace(reload_interval=0.0)
    quiet_build(photos, cfg)
    client = app_module.create_app(cfg).test_client()
    assert client.get("/healthz").get_json()["status"] == "ok"
    write_images(photos, 3, seed=9, prefix="more")
    newer = quiet_build(photos, cfg).version
    fresh = [ref for ref in store.read_segments(newer) if ref.count == 3]
    annoy_file = store.segment_dir(newer, fresh[0].name) / segments.ANNOY_FILE
    os.truncate(annoy_file, annoy_file.stat().st_size // 2)
    checked: list[Path] = []
    real_check = segments.check_files

    def counted_check(folder: Path) -> None:
        checked.append(folder)
        real_check(folder)

    monkeypatch.setattr(segments, "check_files", counted_check)
    for _ in range(3):
        health = client.get("/healthz", headers=ADMIN).get_json()
        assert health["status"] == "ok" and health["items"] == 12 and "build wrote" in health["refused"]
    assert client.get("/healthz").get_json()["refused"].startswith("a newer index version did not load")
    assert client.get("/search?id=1&format=json").status_code == 200
    assert len([f for f in checked if f.parent.parent == newer]) <= 2  # its first segments, once
