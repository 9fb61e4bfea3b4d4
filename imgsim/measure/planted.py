"""A planted set of copies among look-alike photos: what duplicates are scored against.

Photos of one kind of flower look alike; copies of a photo are the same picture. The set holds a
collection's photos (one of each distinct photo: its own copies under another name or size left
out, by name and by a 16x16 thumbnail) and,
for some of them, one copy each of the kinds a photo library collects (issue 22): the same file,
re-saved at JPEG quality 40, half size, a 10 % frame, a 90 % crop, 30 % brighter, grayscale and
turned 90 degrees. The truth is the pairs (original, copy); a method is scored on the pairs it
reports, every pair within one of its groups.
"""

from __future__ import annotations

import itertools
import random
import shutil
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
from PIL import Image

from imgsim.images import edits

KINDS = {
    "exact": None,
    "reencode_q40": edits.reencode(40),
    "resize_50": edits.EDITS["resize_50"],
    "border_10": edits.border(0.10),
    "crop_90": edits.centre_crop(0.9),
    "brighter_30": edits.brightness(1.3),
    "grayscale": edits.EDITS["grayscale"],
    "rotate_90": edits.EDITS["rotate_90"],
}


def _stem(path: Path) -> str:
    """A Flickr photo's id: the same photo at another size ends in _n or _m."""
    return path.stem.removesuffix("_n").removesuffix("_m")


SAME_PICTURE = 4.0  # grey levels: thumbnails this close on average are one picture under two names


def _thumbnail(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L").resize((16, 16), Image.Resampling.BOX), np.float32)


def _seen_before(thumb: np.ndarray, taken: list[np.ndarray]) -> bool:
    """Whether a photo is one already taken under another name (flowers5 holds the same picture
    under two Flickr ids, and bursts of one scene): a copy already, not a look-alike."""
    return bool(taken) and float(np.abs(np.stack(taken) - thumb).mean(axis=(1, 2)).min()) < SAME_PICTURE


def plant(
    source: Path,
    target: Path,
    per_class: int,
    per_kind: int,
    seed: int = 0,
    kinds: Mapping[str, edits.Edit | None] = KINDS,
) -> dict[str, set[frozenset[str]]]:
    """Copy ``per_class`` distinct photos of each class folder of ``source`` into ``target`` and
    one copy of each of ``kinds`` (name -> edit; None: the same file) for ``per_kind`` of them
    each (different originals); the planted pairs per kind, as paths relative to ``target``."""
    rng, seen, originals = random.Random(seed), set(), []
    taken: list[np.ndarray] = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        rng.shuffle(photos)
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        kept = 0
        for photo in photos:
            thumb = _thumbnail(photo)
            if kept == per_class or _stem(photo) in seen or _seen_before(thumb, taken):
                continue
            seen.add(_stem(photo))
            taken.append(thumb)
            shutil.copy(photo, target / folder.name / photo.name)
            originals.append(target / folder.name / photo.name)
            kept += 1
    rng.shuffle(originals)
    if len(originals) < per_kind * len(kinds):
        raise ValueError(f"{len(originals)} photos cannot take {per_kind} copies of {len(kinds)} kinds")
    planted: dict[str, set[frozenset[str]]] = {}
    for number, (kind, make) in enumerate(kinds.items()):
        for original in originals[number * per_kind : (number + 1) * per_kind]:
            suffix = ".jpg" if make is None else ".png"
            copy = original.with_name(f"{original.stem}-{kind}{suffix}")
            if make is None:
                shutil.copy(original, copy)
            else:
                make(Image.open(original).convert("RGB")).save(copy)
            pair = frozenset(str(p.relative_to(target)) for p in (original, copy))
            planted.setdefault(kind, set()).add(pair)
    return planted


def pairs_of(groups: Iterable[Iterable[str]]) -> set[frozenset[str]]:
    """Every pair within each group (of paths)."""
    return {frozenset(pair) for group in groups for pair in itertools.combinations(sorted(group), 2)}


def original_of(path: str) -> str:
    """The source photo a planted copy was made of (``folder/stem-kind.png`` -> ``folder/stem.jpg``)."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/{Path(name).stem.split('-')[0]}.jpg"


def score(
    found: set[frozenset[str]],
    planted: dict[str, set[frozenset[str]]],
    same_pictures: AbstractSet[frozenset[str]] = frozenset(),
) -> dict:
    """Pair precision and recall (of the planted pairs), and recall per kind. ``same_pictures``:
    pairs of source photos reviewed as one picture (the source's own copies), right when reported
    (also between copies of them), neither counted in recall nor wrong."""
    truth = set().union(*planted.values())
    own = {pair for pair in found - truth if frozenset(map(original_of, pair)) in same_pictures}
    right = found & truth
    return {
        "pairs": len(found),
        "right": len(right),
        "planted": len(truth),
        "source_copies": len(own),
        "precision": (len(right) + len(own)) / len(found) if found else 1.0,
        "precision_planted_only": len(right) / len(found) if found else 1.0,
        "recall": len(right) / len(truth) if truth else 1.0,
        "per_kind": {kind: len(pairs & found) / len(pairs) for kind, pairs in planted.items()},
        "wrong": sorted(sorted(pair) for pair in found - truth - own),
    }


def originals_kept(
    planted: dict[str, set[frozenset[str]]], kept: dict[str, str]
) -> dict[str, tuple[int, int]]:
    """Per kind, of the groups that hold a planted copy and its original (``kept``: each grouped
    path -> the path its group keeps), how many keep the original, and how many there are. Exact
    copies are left out: either file is the original."""
    counts = {}
    for kind, pairs in planted.items():
        if kind == "exact":
            continue
        grouped = [pair for pair in pairs if all(path in kept for path in pair)]
        together = [pair for pair in grouped if len({kept[path] for path in pair}) == 1]
        right = [pair for pair in together if kept[next(iter(pair))] == original_of(next(iter(pair)))]
        counts[kind] = (len(right), len(together))
    return counts
