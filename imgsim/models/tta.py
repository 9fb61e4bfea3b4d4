"""Query-side test-time augmentation: also search with the query turned, for photos sent sideways.

A phone photo without its EXIF orientation arrives turned by 90 degrees, and no pooling makes a
CNN's vector insensitive to that. With ``tta = rotations`` a query is embedded four ways (one
shared pass) and searched four times. A turned variant replaces the query's own answer only when
its best hit is a near copy (score >= SURE) and better than the plain query's best: a turned photo
then finds its original, and every other query keeps its plain answer. Keeping each item's best
distance over the four, instead, cost other edits (crop 70 %: 0.825 -> 0.765 at rank 1) and class
retrieval (P@10 0.630 -> 0.618) on flowers5: docs/benchmarks.md section 9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PIL import Image

TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
SURE = 0.8  # a best hit this close (cosine in the index's space) is the same photo, turned


class Scored(Protocol):
    score: float


def variants(image: Image.Image, mode: str) -> list[Image.Image]:
    """The images a query searches with: itself first, then its turns if ``mode`` asks for them."""
    if mode == "rotations":
        return [image, *(image.transpose(turn) for turn in TURNS)]
    return [image]


def best_orientation(answers: Sequence[Sequence[Scored]]) -> Sequence[Scored]:
    """The plain query's answer, unless a turned variant found a near copy that it did not."""
    plain, turned = answers[0], [answer for answer in answers[1:] if answer]
    if not turned:
        return plain
    best = max(turned, key=lambda answer: answer[0].score)
    beaten = not plain or best[0].score > plain[0].score
    return best if best[0].score >= SURE and beaten else plain
