"""Older formats are read through one module (index/migrate.py), as today's; no other module of the
package knows what an older imgsim wrote."""

import re

import numpy as np
import pytest

from helpers import ROOT, quiet_build
from imgsim import durable
from imgsim.duplicates import copy_pairs
from imgsim.index import keypoints, migrate, store
from imgsim.live import live
from imgsim.search import annoy_index


def test_a_version_from_a_later_imgsim_is_refused_with_what_to_do(photos, tiny_config):
    quiet_build(photos, tiny_config)
    version = store.current_version(tiny_config.index_dir)
    durable.write_json(
        version / "manifest.json", durable.read_json(version / "manifest.json") | {"format_version": 9}
    )
    with pytest.raises(store.IndexMissing, match="index format 9, this imgsim reads 1, 2: rebuild it"):
        annoy_index.open_index(tiny_config.index_dir)


def test_segments_written_before_hashes_have_none_and_before_features_none_at_all(photos, tiny_config):
    quiet_build(photos, tiny_config)
    version = store.current_version(tiny_config.index_dir)
    [ref] = store.read_segments(version)
    folder = store.segment_dir(version, ref.name)
    (folder / keypoints.HASHES).unlink()
    assert keypoints.Keypoints(folder).hashes is None and keypoints.load(version) is not None
    (folder / keypoints.SIZES).unlink()
    assert keypoints.load(version) is None


def test_an_index_folder_from_before_the_live_store_kind_was_recorded_stays_sqlite(tmp_path):
    (tmp_path / live.DB_FILE).write_bytes(b"")
    assert migrate.live_store_kind(tmp_path, live.KIND_FILE, live.DB_FILE) == "sqlite"
    assert migrate.live_store_kind(tmp_path / "new", live.KIND_FILE, live.DB_FILE) is None
    with pytest.raises(live.StoreUnavailable, match="keeps its live changes and ids in sqlite"):
        live.open_store(tmp_path, "postgresql://nowhere/imgsim")


def test_copies_of_a_version_built_before_them_are_none_and_their_verdicts_empty(tmp_path):
    assert copy_pairs.load(tmp_path) is None and copy_pairs.verdicts_of(tmp_path) == {}


def test_saved_edited_queries_without_their_edits_are_made_again():
    assert not migrate.calibration_has_edits({"ids": np.arange(3), "model_key": "m"})


OLD_FORMAT_FILES = (
    "segments.json",
    "segment.json",
    "copies.json",
    "kp_sizes.npy",
    "kp_hash.npy",
    "items.json",
)


def test_no_other_module_names_the_files_an_older_version_may_lack():
    """Each such file is named once, in migrate.py, whose readers say what its absence means."""
    for path in sorted((ROOT / "imgsim").rglob("*.py")):
        if path.name != "migrate.py":
            text = path.read_text()
            named = [name for name in OLD_FORMAT_FILES if f'"{name}"' in text]
            assert not named, f"{path.relative_to(ROOT)} names {named}: read it through index/migrate.py"
            assert not re.search(r"format_version\s*[!=<>]|\.get\(\"format_version", text), path
