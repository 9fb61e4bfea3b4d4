"""The ``imgsim`` command as a person types it: each subcommand with no more than it needs.

The command line searches what the service searches: the built index with the live changes
(``imgsim add`` / ``imgsim remove``) over it, through the same query path (search/query.py).
"""

from __future__ import annotations

import json

import pytest

from helpers import quiet_build, write_images
from imgsim import cli


@pytest.fixture
def indexed(photos, tiny_config, monkeypatch):
    """An index of ``photos`` that the command finds through IMGSIM_* variables alone."""
    quiet_build(photos, tiny_config)
    monkeypatch.setenv("IMGSIM_INDEX_DIR", str(tiny_config.index_dir))
    monkeypatch.setenv("IMGSIM_MODEL", tiny_config.model)
    monkeypatch.setenv("IMGSIM_IMAGE_SIZE", str(tiny_config.image_size))
    return tiny_config


def _searched(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert cli.main(["search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_imgsim_duplicates_needs_no_argument(indexed, capsys):
    assert cli.main(["duplicates"]) == 0
    assert "groups of copies" in capsys.readouterr().out
    assert cli.main(["duplicates", "--json"]) == 0
    assert "groups" in json.loads(capsys.readouterr().out)


def test_a_subcommand_with_only_help_shows_the_scripts_help(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["add", "--help"])
    assert exited.value.code == 0
    assert "--add" in capsys.readouterr().out


def test_an_addition_is_found_first_by_the_next_search(indexed, tmp_path, capsys):
    (new,) = write_images(tmp_path / "new", 1, seed=99, prefix="holiday")
    assert cli.main(["add", str(new)]) == 0
    added_id = int(capsys.readouterr().out.split(" as id ")[1].split()[0])
    (answer,) = _searched(capsys, str(new), "--k", "3")
    first = answer["results"][0]
    assert first["id"] == added_id and first["distance"] == pytest.approx(0, abs=1e-5)


def test_a_removed_item_is_gone_from_the_next_search(indexed, photos, capsys):
    (before,) = _searched(capsys, str(photos / "img0003.png"), "--k", "3")
    first = before["results"][0]
    assert first["path"] == "img0003.png"
    assert cli.main(["remove", str(first["id"])]) == 0
    (after,) = _searched(capsys, str(photos / "img0003.png"), "--k", "3")
    assert first["id"] not in [hit["id"] for hit in after["results"]]
