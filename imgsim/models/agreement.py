"""Which arithmetic the network runs in, chosen by measuring agreement with float32.

On CPUs with bf16 or int8 units (Intel AMX, AVX512-BF16, VNNI) OpenVINO runs a CNN two to ten
times faster in bf16 or int8 than in f32, but the vectors move: by 0.2-0.5 % in bf16, and by
5-10 % in naive int8, enough to reorder neighbours (docs/benchmarks.md section 11). So ``auto``
never trusts a precision by name: at build time it embeds a sample of the collection's own photos
and their edited copies at f32 and at each faster precision the CPU runs natively, fastest first,
and takes the first whose vectors pass every gate. What was measured goes in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgsim.index import vectors as vector_math
from imgsim.index.manifest import Agreement

FASTEST_FIRST = ("int8", "bf16", "f32")


@dataclass(frozen=True)
class Gates:
    """What a precision must reach against f32 on the sample to be chosen.

    Chosen from measurements (docs/benchmarks.md section 11): bf16 on EfficientNet-Lite0 reaches a
    mean cosine of 0.996 and shares 0.94 of the top 10 in a sample of 200, and scores on flowers5
    within 0.005 of f32; the best int8 NNCF gave (0.965, 0.89) lost 0.02-0.04 of P@1 and mAP.
    """

    mean_cosine: float = 0.99
    top10: float = 0.90
    rank1_drop: float = 0.01  # edited copies found at rank 1: at most this share fewer than f32


GATES = Gates()


def _unit(vectors: np.ndarray) -> np.ndarray:
    """As the index holds them: the sample's shared direction off, unit length."""
    return vector_math.centred(vectors, vector_math.mean_direction(vectors))


def _nearest(unit: np.ndarray, k: int) -> np.ndarray:
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def _rank1(originals: np.ndarray, copies: np.ndarray, owners: np.ndarray) -> float:
    """Share of edited copies whose nearest original is the photo they were made from."""
    if not len(copies):
        return 1.0
    mean = vector_math.mean_direction(originals)
    found = np.argmax(vector_math.centred(copies, mean) @ vector_math.centred(originals, mean).T, axis=1)
    return float(np.mean(found == owners))


def compare(
    precision: str,
    reference: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    owners: np.ndarray,
    seconds: float = 0.0,
    gates: Gates = GATES,
) -> Agreement:
    """Score ``candidate`` (originals, edited copies) against the f32 ``reference`` of the same photos;
    ``owners[i]`` is the row of the original that copy ``i`` was made from."""
    ref, got = _unit(reference[0]), _unit(candidate[0])
    cosines = np.sum(ref * got, axis=1)
    k = min(10, len(ref) - 1)
    if k > 0:
        shared = [len(set(a) & set(b)) / k for a, b in zip(_nearest(ref, k), _nearest(got, k), strict=True)]
        top10 = float(np.mean(shared))
    else:
        top10 = 1.0
    rank1_f32, rank1 = _rank1(*reference, owners), _rank1(*candidate, owners)
    result = Agreement(
        precision,
        round(float(cosines.mean()), 5),
        round(float(cosines.min()), 5),
        round(top10, 4),
        round(rank1, 4),
        round(rank1_f32, 4),
        round(seconds, 2),
    )
    if result.mean_cosine < gates.mean_cosine:
        result.misses.append(f"mean cosine {result.mean_cosine:.4f} < {gates.mean_cosine}")
    if result.top10 < gates.top10:
        result.misses.append(f"top-10 agreement {result.top10:.3f} < {gates.top10}")
    if rank1 < rank1_f32 - gates.rank1_drop:
        result.misses.append(f"edited-copy rank-1 {rank1:.3f} < f32's {rank1_f32:.3f} - {gates.rank1_drop}")
    return result


Embed = Callable[[np.ndarray], np.ndarray]  # uint8 pixels -> vectors, at one precision


def choose(
    candidates: list[str],
    embed_at: Callable[[str], Embed | None],
    originals: np.ndarray,
    copies: np.ndarray,
    owners: np.ndarray,
    clock: Callable[[], float],
    gates: Gates = GATES,
) -> tuple[str, list[Agreement], np.ndarray]:
    """The first of ``candidates`` (fastest first) whose vectors pass ``gates`` against f32's, what
    was measured, and the originals' vectors at the chosen precision (a build keeps them).

    ``embed_at(precision)`` gives that precision's embedding function, or None where it cannot be
    had (a quantization that failed); f32 is the reference and always the last resort.
    """
    started = clock()
    f32 = embed_at("f32")
    assert f32 is not None  # the reference is always there
    reference = (f32(originals), f32(copies))
    measured = [Agreement("f32", 1.0, 1.0, 1.0, 0, 0, round(clock() - started, 2))]
    measured[0].rank1 = measured[0].rank1_f32 = round(_rank1(*reference, owners), 4)
    for precision in candidates:
        if precision == "f32":
            break
        started = clock()
        embed = embed_at(precision)
        if embed is None:
            continue
        candidate = (embed(originals), embed(copies))
        agreement = compare(precision, reference, candidate, owners, clock() - started, gates)
        measured.append(agreement)
        if agreement.passed:
            return precision, measured, candidate[0]
    return "f32", measured, reference[0]
