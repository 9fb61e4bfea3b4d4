"""Benchmark section planted: verified duplicates against imagededup's PHash on a planted set.

flowers5's distinct photos (look-alikes: many photos of one kind of flower) with 20 copies of each
kind of issue 22 (measure/planted.py), indexed with the defaults and EfficientNet-Lite0; the
pairs in ``ann.py --duplicates``' groups against those of imagededup's PHash at its default
threshold (10 bits of 64), scored against the planted pairs in one run.

imagededup is a peer, not a dependency: ``pip install --no-deps imagededup==0.3.3.post2`` (its
CNN method needs torch, which the PHash does not use; the two modules that import torch are
stood in for by empty ones, so its real PHash code runs). The section is skipped without it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common import FLOWERS, table
from imgsim import config
from imgsim.duplicates import finding
from imgsim.images import edits
from imgsim.indexing import indexer
from imgsim.measure import bursts, planted
from imgsim.search import annoy_index

REVIEWED = Path(__file__).with_name("flowers5_reviewed_pairs.json")


def _phash():
    for name in ("imagededup.methods.cnn", "imagededup.utils.models"):  # the torch-only modules
        stub = types.ModuleType(name)
        stub.CNN = stub.CustomModel = None
        sys.modules.setdefault(name, stub)
    from imagededup.methods import PHash

    return PHash(verbose=False)


def _imagededup(folder: Path) -> tuple[set, float]:
    began = time.perf_counter()
    method = _phash()
    encodings = method.encode_images(image_dir=folder, recursive=True)
    found = method.find_duplicates(encoding_map=encodings)  # max_distance_threshold=10, its default
    pairs = {frozenset((a, b)) for a, others in found.items() for b in others}
    return pairs, time.perf_counter() - began


@dataclass
class Planted:
    """A planted set, indexed with the defaults, and the pairs each method grouped."""

    truth: dict[str, set[frozenset[str]]]  # the planted pairs by kind
    ours: set[frozenset[str]]  # the pairs within imgsim's groups of copies
    theirs: set[frozenset[str]] | None  # imagededup PHash's, when asked for
    build_s: float
    duplicates_s: float  # opening the index and listing its duplicate groups
    their_s: float
    items: int
    largest_group: int
    said: list[str]  # the build's log lines
    bursts: set[frozenset[str]] = dataclasses.field(default_factory=set)  # the planted bursts' pairs
    shots: set[frozenset[str]] = dataclasses.field(default_factory=set)  # pairs in its similar shots
    kept: dict[str, str] = dataclasses.field(default_factory=dict)  # each grouped copy's path -> its keeper's


def plant_and_find(
    per_class: int,
    per_kind: int,
    kinds: Mapping[str, edits.Edit | None] = planted.KINDS,
    peer: bool = True,
    burst_count: int = 0,
) -> Planted:
    """Plant ``kinds`` among flowers5's distinct photos in a temporary folder (removed after), and
    ``burst_count`` bursts (measure/bursts.py) of photos no copy was made of; index it with the
    defaults and EfficientNet-Lite0, and list the pairs of its groups of copies and of its similar
    shots (and, with ``peer``, imagededup PHash's on the same folder)."""
    workdir = Path(tempfile.mkdtemp(prefix="imgsim-bench-planted-"))
    try:
        folder = workdir / "photos"
        truth = planted.plant(FLOWERS, folder, per_class, per_kind, seed=0, kinds=kinds)
        used = {path for pairs in truth.values() for pair in pairs for path in pair}
        spare = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpg"))
        spare = [folder / path for path in spare if path not in used][::7][:burst_count]
        planted_bursts = bursts.plant(folder, spare)
        cfg = config.Config(model=str(config.SHARED_MODEL), index_dir=workdir / "index")
        said: list[str] = []
        report = indexer.build_index(folder, cfg, progress=False, log=said.append)
        began = time.perf_counter()
        index = annoy_index.open_index(cfg.index_dir)
        _, groups = finding.find_duplicates(index)
        copies = [group for group in groups if group.kind != "similar"]
        paths = {m.id: m.path for group in copies for m in group.members}
        kept = {m.path: paths[group.keep] for group in copies for m in group.members}
        ours = planted.pairs_of([[m.path for m in group.members] for group in copies])
        shots = planted.pairs_of([[m.path for m in g.members] for g in groups if g.kind == "similar"])
        took = time.perf_counter() - began
        theirs, their_s = _imagededup(folder) if peer else (None, 0.0)
        largest = max((len(group.members) for group in copies), default=0)
        found = Planted(truth, ours, theirs, report.seconds, took, their_s, len(index.items), largest, said)
        return dataclasses.replace(found, bursts=planted_bursts, shots=shots, kept=kept)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def reviewed_same_pictures() -> set[frozenset[str]]:
    """Pairs of flowers5's photos reviewed by eye as one picture (the source's own copies)."""
    return {frozenset(pair) for pair in json.loads(REVIEWED.read_text())["same_picture"]}


def bench_planted(quick: bool) -> tuple[dict, str]:
    try:
        _phash()
    except ImportError:
        return {}, "skipped: imagededup is not installed (pip install --no-deps imagededup==0.3.3.post2)"
    found = plant_and_find(per_class=60 if quick else 10_000, per_kind=20)
    truth, ours, theirs, items = found.truth, found.ours, found.theirs or set(), found.items
    took, their_s, report_s = found.duplicates_s, found.their_s, found.build_s
    us, peer = "imgsim (defaults)", "imagededup PHash (10 bits)"
    same = reviewed_same_pictures()
    scored = {us: planted.score(ours, truth, same), peer: planted.score(theirs, truth, same)}
    seconds = {us: f"{took:.2f} (build {report_s:.0f})", peer: f"{their_s:.1f}"}
    kinds = list(planted.KINDS)
    rows = [
        [
            name,
            s["pairs"],
            s["right"],
            s["source_copies"],
            len(s["wrong"]),
            f"{s['precision']:.3f}",
            f"{s['precision_planted_only']:.3f}",
            f"{s['recall']:.3f}",
            *(f"{s['per_kind'][k]:.2f}" for k in kinds),
            seconds[name],
        ]
        for name, s in scored.items()
    ]
    text = (
        f"{items:,} photos: {items - 20 * len(kinds)} of flowers5 and 20 copies of each of {len(kinds)} "
        f"kinds; pairs reported, planted pairs among them, pairs of the source's own copies (reviewed "
        f"by eye, {REVIEWED.name}), wrong pairs; pair precision (counting the source's copies right, and "
        f"counting them wrong), recall of the planted pairs, recall per kind, seconds:\n\n"
    )
    headers = [
        "method",
        "pairs",
        "planted",
        "source's copies",
        "wrong",
        "precision",
        "precision (planted only)",
    ]
    text += table([*headers, "recall", *kinds, "s"], rows)
    for name, s in scored.items():
        shown = "; ".join(" = ".join(pair) for pair in s["wrong"][:12])
        text += f"\n\n{name}: {len(s['wrong'])} wrong pairs{': ' + shown if shown else ''}"
    return {"planted": scored, "items": items}, text
