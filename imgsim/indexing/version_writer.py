"""The one writer of index versions, shared by builds and compactions.

Both fill a fresh folder under ``versions/.building-*`` with their segments and manifest; this module
then writes the segment list and the manifest, has the collection's copies verified, and publishes
the version atomically (index/store.py), or removes the folder if anything fails or the process is
told to stop, so that ``current`` only ever names a complete version.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgsim import config
from imgsim.index import store
from imgsim.index.manifest import Manifest


@dataclass
class Filled:
    """What a build or a compaction wrote into a new version's folder, and how its copies are
    verified there (``verify_copies(folder)``)."""

    refs: list[store.SegmentRef]
    manifest: Manifest
    verify_copies: Callable[[Path], None]
    items: list[store.Item]  # the version's rows, as the segments give them
    # a compaction's: the copies so far, its additions left to check once published (True if written)
    carry_copies: Callable[[Path], bool] | None = None


def write_version(
    cfg: config.Config, fill: Callable[[Path], Filled], before_publish: Callable[[], None] | None = None
) -> Path:
    """A new version: ``fill`` writes its segments into a fresh folder; then its segment list and
    manifest, its verified copies (or, for a compaction, those so far: the caller checks the rest
    once published), ``before_publish`` (the kill tests' hook), and ``current``; then the
    thumbnails of what it no longer holds go."""
    building = store.start_version(cfg.index_dir)
    try:
        filled = fill(building)
        store.write_segments(building, filled.refs)
        store.write_manifest(building, filled.manifest)
        if filled.carry_copies is None or not filled.carry_copies(building):
            filled.verify_copies(building)  # the copies in the collection, verified once per version
        if before_publish is not None:
            before_publish()
        published = store.publish(cfg.index_dir, building, keep=cfg.keep_versions)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    store.prune_thumbnails(cfg.index_dir, {item.sha1 for item in filled.items})
    return published
