"""Simulated bursts (issue 36): two shots of one scene taken moments apart, made from one photo.

The camera moved between the shots (each frame shows a part of the scene the other lacks), zoomed
a little and metered another exposure. The photo itself is replaced by its first frame, so the
pair is two shots and neither is the other's copy. Deterministic: the same frames on every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FRAME = 0.88  # of the scene's width and height, each shot
SHIFTS = (0.12, 0.14, 0.16)  # how far the second shot moved, of the scene's width
ZOOMS = (1.0, 1.04, 1.08)
EXPOSURES = (0.85, 1.15)


def frames(scene: Image.Image, number: int) -> tuple[Image.Image, Image.Image]:
    """The two shots of ``scene``; ``number`` varies the move, zoom and exposure."""
    width, height = scene.size
    shift, zoom = SHIFTS[number % len(SHIFTS)], ZOOMS[number % len(ZOOMS)]
    exposure = EXPOSURES[number % len(EXPOSURES)]
    first_box = (0, 0, FRAME * width, FRAME * height)
    side = FRAME / zoom  # the second shot moved right and down, and zoomed in
    left, top = min(shift, 1 - side), min(0.04 + 0.02 * (number % 3), 1 - side)
    second_box = (left * width, top * height, (left + side) * width, (top + side) * height)
    first = scene.crop(first_box)
    second = scene.crop(second_box).resize(first.size, Image.Resampling.LANCZOS)
    brighter = np.clip(np.asarray(second, np.float32) * exposure, 0, 255).astype(np.uint8)
    return first, Image.fromarray(brighter)


def plant(folder: Path, photos: list[Path]) -> set[frozenset[str]]:
    """Turn each of ``photos`` (under ``folder``) into a burst: the photo becomes its first shot
    and ``stem-burst.png`` beside it the second; the pairs, as paths relative to ``folder``."""
    pairs = set()
    for number, photo in enumerate(photos):
        with Image.open(photo) as opened:
            scene = opened.convert("RGB")
        first, second = frames(scene, number)
        first.save(photo, quality=92)
        second_path = photo.with_name(f"{photo.stem}-burst.png")
        second.save(second_path)
        pairs.add(frozenset(str(p.relative_to(folder)) for p in (photo, second_path)))
    return pairs
