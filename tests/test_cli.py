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


def test_a_build_whose_photos_were_all_embedded_choosing_the_precision_gives_no_rate_of_zero(capsys):
    from pathlib import Path

    from imgsim.cli import index as index_cli
    from imgsim.indexing.indexer import BuildReport

    measured = BuildReport(Path("v"), 40, embedded=40, measured=40, embed_seconds=0.0, seconds=3.0)
    index_cli._print_report(measured)
    said = capsys.readouterr().out
    assert "0.0 img/s" not in said and "embedded 40, 40 while choosing the precision" in said
    both = BuildReport(Path("v"), 340, embedded=340, measured=40, embed_seconds=10.0, seconds=12.0)
    index_cli._print_report(both)
    assert "embedded 340: 300 at 30.0 img/s, 40 while choosing the precision" in capsys.readouterr().out
    plain = BuildReport(Path("v"), 12, embedded=12, embed_seconds=2.0, seconds=3.0)
    index_cli._print_report(plain)
    assert "embedded 12 at 6.0 img/s" in capsys.readouterr().out
