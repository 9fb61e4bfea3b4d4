"""Decisions about duplicates stay made: by content, through rebuilds, renames, restarts and kills.

The service here holds 12 generated photos and exact copies of two of them (img0003 twice, img0005
three times), on SQLite and on PostgreSQL.
"""

import json
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import ADMIN, ROOT, on_live_backend, quiet_build
from imgsim.duplicates import copy_pairs, grouping
from imgsim.duplicates.decisions import Decided, Decision, Member
from imgsim.index import store
from imgsim.serve import app as app_module
from imgsim.serve import deciding, web


@pytest.fixture(params=["sqlite", "postgresql"])
def service_config(request, service_config):
    return on_live_backend(request, service_config)


@pytest.fixture
def copied(photos):
    """``photos`` with img0003 copied once and img0005 twice, byte for byte."""
    shutil.copy(photos / "img0003.png", photos / "img0003-again.png")
    for name in ("img0005-b.png", "img0005-c.png"):
        shutil.copy(photos / "img0005.png", photos / name)
    return photos


@pytest.fixture
def served(copied, service_config):
    """A running service over ``copied``, and the function that reopens it after a rebuild."""
    quiet_build(copied, service_config)
    apps = []

    def open_app():
        apps.append(app_module.create_app(service_config))
        return apps[-1].test_client()

    yield open_app
    for application in apps:
        web.service_of(application).close()


def _groups(client, state="open") -> list[dict]:
    reply = client.get(f"/duplicates?format=json&state={state}")
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["groups"]


def _paths(group: dict) -> set[str]:
    return {member["path"] for member in group["members"]}


def _group_of(client, path: str) -> dict:
    [group] = [g for g in _groups(client) if path in _paths(g)]
    return group


def _decide(client, decision: str, group: dict):
    ids = [group["keep"]] + [m["id"] for m in group["members"] if m["id"] != group["keep"]]
    return client.post("/duplicates/decisions", json={"ids": ids, "decision": decision}, headers=ADMIN)


def test_keep_all_resolves_a_group_and_undo_opens_it_again(served, copied, service_config):
    client = served()
    group = _group_of(client, "img0003.png")
    reply = _decide(client, "keep_all", group)
    assert reply.status_code == 201
    decision = reply.get_json()
    assert decision["decision"] == "keep_all" and decision["ids"][0] == group["keep"]
    assert all("img0003.png" not in _paths(g) for g in _groups(client))
    [resolved] = _groups(client, "resolved")
    assert resolved["state"] == "resolved" and resolved["decision"]["id"] == decision["id"]
    assert _paths(resolved) == {"img0003.png", "img0003-again.png"}
    assert len(_groups(client, "all")) == len(_groups(client)) + 1

    quiet_build(copied, service_config, delta_only=True)  # a compaction keeps it resolved
    client = served()
    assert [g["decision"]["id"] for g in _groups(client, "resolved")] == [decision["id"]]
    undone = client.delete(f"/duplicates/decisions/{decision['id']}", headers=ADMIN)
    assert undone.status_code == 200 and undone.get_json()["undone"]["id"] == decision["id"]
    assert _group_of(client, "img0003.png")["state"] == "open" and not _groups(client, "resolved")


def test_a_resolved_group_stays_resolved_after_a_full_rebuild_and_a_rename(served, copied, service_config):
    client = served()
    _decide(client, "not_copies", _group_of(client, "img0005.png"))
    (copied / "img0005-c.png").rename(copied / "renamed.png")
    quiet_build(copied, service_config, full=True)
    client = served()
    assert all("img0005.png" not in _paths(g) for g in _groups(client))
    [resolved] = _groups(client, "resolved")
    assert _paths(resolved) == {"img0005.png", "img0005-b.png", "renamed.png"}


def test_a_new_copy_of_a_resolved_picture_is_a_new_group_of_what_is_new(served, copied, service_config):
    client = served()
    group = _group_of(client, "img0005.png")
    _decide(client, "keep_all", group)
    shutil.copy(copied / "img0005.png", copied / "img0005-d.png")
    quiet_build(copied, service_config)
    client = served()
    fresh = _group_of(client, "img0005-d.png")
    kept_path = next(m["path"] for m in group["members"] if m["id"] == group["keep"])
    assert _paths(fresh) == {"img0005-d.png", kept_path}  # the keeper and what is new, not all four


def test_remove_others_takes_them_out_of_the_index_and_undo_brings_them_back(served, copied, service_config):
    client = served()
    group = _group_of(client, "img0005.png")
    decision = _decide(client, "remove_others", group).get_json()
    others = [i for i in decision["ids"][1:]]
    for item_id in others:
        assert client.get(f"/search?id={item_id}&format=json").status_code == 404
    assert all((copied / p).is_file() for p in decision["paths"])  # files are never deleted
    resolved = _groups(client, "resolved")[0]
    assert sum(m["what"] == "removed from the index" for m in resolved["members"]) == 2

    client.delete(f"/duplicates/decisions/{decision['id']}", headers=ADMIN)
    back = [client.get(f"/search?id={item_id}&format=json").status_code for item_id in others]
    assert back == [404, 404]  # a removed id is never given again: the copies came back under new ids
    quiet_build(copied, service_config, delta_only=True)  # groups are a version's: the next compaction's
    again = _group_of(served(), "img0005.png")
    assert _paths(again) == {"img0005.png", "img0005-b.png", "img0005-c.png"}


def test_trash_others_moves_files_into_the_collection_and_undo_moves_them_back(
    served, copied, service_config
):
    client = served()
    group = _group_of(client, "img0003.png")
    decision = _decide(client, "trash_others", group).get_json()
    [move] = decision["moves"]
    assert move["trashed"].startswith(deciding.TRASH + "/") and (copied / move["trashed"]).is_file()
    assert not (copied / move["path"]).exists()
    quiet_build(copied, service_config)  # the trash is not indexed
    client = served()
    assert all(not p.startswith(deciding.TRASH) for g in _groups(client, "all") for p in _paths(g))

    client.delete(f"/duplicates/decisions/{decision['id']}", headers=ADMIN)
    assert (copied / move["path"]).is_file() and not (copied / move["trashed"]).exists()
    quiet_build(copied, service_config)
    assert _paths(_group_of(served(), "img0003.png")) == {"img0003.png", "img0003-again.png"}
    quiet_build(copied, service_config, full=True)  # its path is indexed again, not kept out as deleted
    assert _paths(_group_of(served(), "img0003.png")) == {"img0003.png", "img0003-again.png"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ids": [1], "decision": "keep_all"}, "bad_id"),
        ({"ids": [1, 1], "decision": "keep_all"}, "bad_id"),
        ({"ids": [1, 99_999], "decision": "keep_all"}, "bad_id"),
        ({"ids": [1, "x"], "decision": "keep_all"}, "bad_id"),
        ({"ids": [1, 2], "decision": "delete_everything"}, "bad_decision"),
        ({"ids": [1, 2]}, "bad_decision"),
    ],
)
def test_bad_ids_and_decisions_are_400s_with_their_codes(served, body, code):
    reply = served().post("/duplicates/decisions", json=body, headers=ADMIN)
    assert reply.status_code == 400 and reply.get_json()["code"] == code, reply.get_json()


def test_deciding_needs_the_admin_token_and_a_known_decision(served):
    client = served()
    group = _group_of(client, "img0003.png")
    ids = [m["id"] for m in group["members"]]
    assert client.post("/duplicates/decisions", json={"ids": ids, "decision": "keep_all"}).status_code == 401
    assert client.delete("/duplicates/decisions/1").status_code == 401
    reply = client.delete("/duplicates/decisions/12345", headers=ADMIN)
    assert reply.status_code == 404 and reply.get_json()["code"] == "unknown_decision"
    assert client.get("/duplicates?state=closed&format=json").get_json()["code"] == "bad_state"


CRASHING = """
import os, pickle, sys
sys.path.insert(0, {root!r})
from imgsim.serve import deciding, service

moved = []
real_rename = os.rename
def rename(source, target):
    real_rename(source, target)
    moved.append(target)
    if len(moved) == {after}:
        os._exit(9)  # as kill -9: no cleanup, nothing flushed but what was
deciding.os.rename = rename
svc = service.assemble(pickle.loads({config!r}))
svc.start()
{action}
"""


def _crash(service_config, action: str, after: int) -> None:
    code = CRASHING.format(
        root=str(ROOT),
        config=pickle.dumps(service_config),
        after=after,
        action=textwrap.dedent(action),
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 9, finished.stderr[-2000:]


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.png"))


def test_a_trash_move_and_its_undo_killed_half_way_lose_nothing(served, copied, service_config):
    client = served()
    group = _group_of(client, "img0005.png")
    ids = [group["keep"]] + [m["id"] for m in group["members"] if m["id"] != group["keep"]]
    before = _files(copied)
    _crash(service_config, f"svc.deciding.decide('trash_others', {ids})", after=1)
    assert _files(copied) == before  # each file at one place or the other, none lost
    client = served()  # a new worker finishes the move it finds under way
    [decision] = [d for d in _groups(client, "resolved")]
    assert decision["decision"]["state"] == "done" and len(decision["decision"]["moves"]) == 2
    assert all((copied / m["trashed"]).is_file() for m in decision["decision"]["moves"])
    assert _files(copied) == before

    _crash(service_config, f"svc.deciding.undo({decision['decision']['id']})", after=1)
    assert _files(copied) == before
    assert not _groups(served(), "resolved") and _files(copied) == before  # the undo was finished
    assert not list((copied / deciding.TRASH).rglob("*.png"))
    quiet_build(copied, service_config, delta_only=True)
    assert _paths(_group_of(served(), "img0005.png")) == {"img0005.png", "img0005-b.png", "img0005-c.png"}


def test_a_removal_cut_short_by_a_crash_is_finished_by_the_next_worker(served, service_config):
    """The decision is recorded as under way before any copy is removed: a worker killed in
    between left a resolved group whose copies the index still served."""
    from imgsim.live import live

    client = served()
    group = _group_of(client, "img0005.png")
    keep = next(m for m in group["members"] if m["id"] == group["keep"])
    others = [m for m in group["members"] if m["id"] != group["keep"]]
    members = tuple(Member(m["id"], m["path"], "") for m in [keep, *others])
    store_ = live.open_store(service_config.index_dir, service_config.live_url)
    sha1 = {item.id: item.sha1 for item in web.service_of(client.application).holder.get().index.items}
    members = tuple(Member(m.id, m.path, sha1[m.id]) for m in members)
    store_.decide(Decision(0, "remove_others", members, 0.0, "moving"))  # as a crash left it
    store_.close()
    client = served()
    assert [client.get(f"/search?id={m['id']}&format=json").status_code for m in others] == [404, 404]
    assert _groups(client, "resolved")[0]["decision"]["state"] == "done"


def _item(id, path, sha1):
    return store.Item(id, path, 0, 0, sha1)


def test_decisions_apply_by_content_and_a_further_copy_with_the_same_bytes_is_new(tmp_path):
    items = [_item(0, "a.png", "A"), _item(1, "b.png", "A"), _item(2, "c.png", "A")]
    pairs = [copy_pairs.Pair(a, b, 0.0, None) for a, b in ((0, 1), (0, 2), (1, 2))]
    kept = Decision(1, "keep_all", (Member(10, "a.png", "A"), Member(11, "b.png", "A")), 0.0)
    [group] = grouping.from_pairs(items, pairs, 0.1, tmp_path, decided=Decided.of(items, [kept]))
    assert {m.path for m in group.members} == {"a.png", "c.png"}  # c.png is new: the keeper and it
    renamed = [_item(0, "a.png", "A"), _item(1, "moved.png", "A")]
    assert grouping.from_pairs(renamed, pairs[:1], 0.1, tmp_path, decided=Decided.of(renamed, [kept])) == []
    apart = Decision(2, "not_copies", kept.members, 0.0)
    assert grouping.from_pairs(renamed, pairs[:1], 0.1, tmp_path, decided=Decided.of(renamed, [apart])) == []


def test_the_command_line_decides_lists_and_undoes(served, service_config, capsys):
    from imgsim.cli import duplicates as duplicates_cli

    group = _group_of(served(), "img0003.png")
    where = ["--index-dir", str(service_config.index_dir)]
    where += ["--live-url", service_config.live_url] if service_config.live_url else []
    ids = [str(group["keep"])] + [str(m["id"]) for m in group["members"] if m["id"] != group["keep"]]
    assert duplicates_cli.main(["--decide", "keep_all", *ids, "--json", *where]) == 0
    made = json.loads(capsys.readouterr().out)
    assert duplicates_cli.main(["--state", "resolved", "--json", *where]) == 0
    [resolved] = json.loads(capsys.readouterr().out)["groups"]
    assert resolved["decision"]["id"] == made["id"] and resolved["state"] == "resolved"
    with pytest.raises(SystemExit) as refused:
        duplicates_cli.main(["--decide", "keep_all", ids[0], *where])
    assert refused.value.code == 2 and "two ids or more" in capsys.readouterr().err
    assert duplicates_cli.main(["--decide", "keep_all", ids[0], "99999", *where]) == 2
    assert "no image with id 99999" in capsys.readouterr().err
    assert duplicates_cli.main(["--undo", str(made["id"]), *where]) == 0
    assert f"undid decision {made['id']}" in capsys.readouterr().out
    assert duplicates_cli.main(["--state", "resolved", "--json", *where]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == []
