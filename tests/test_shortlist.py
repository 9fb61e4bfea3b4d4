"""The shortlist's augmentation: another photo of the query's scene, less like the query than a
look-alike is but very like a photo of the scene that is, comes before the look-alike."""

from dataclasses import dataclass, field

import numpy as np

from imgsim.search import shortlist
from imgsim.search.annoy_index import Hit


@dataclass
class _Index:
    """What the shortlist reads of a SearchIndex: stored vectors by row, rows by id, the metric."""

    vectors: np.ndarray
    metric: str = "angular"
    rows_by_id: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rows_by_id = {100 + row: row for row in range(len(self.vectors))}

    def stored_vectors_of(self, rows: list[int]) -> np.ndarray:
        return self.vectors[rows]


def _scene() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The query, and four photos: a photo of its scene taken close to it, another taken from
    further off (less like the query than the look-alike is), a look-alike, and a far photo."""
    e = np.eye(6)
    near = 0.9 * e[0] + np.sqrt(1 - 0.81) * e[1]
    further = 0.70 * e[0] + np.sqrt(1 - 0.49) * e[1]  # like `near` (0.94), not like the query (0.70)
    look_alike = 0.72 * e[0] - np.sqrt(1 - 0.72**2) * e[1]  # like the query (0.72), unlike the scene
    far = 0.3 * e[0] + np.sqrt(1 - 0.09) * e[3]
    return e[0], np.stack([near, look_alike, further, far]), ["near", "look-alike", "further", "far"]


def _hits(query: np.ndarray, vectors: np.ndarray, names: list[str]) -> list[Hit]:
    cosines = vectors @ query
    hits = [Hit(100 + row, names[row], float(np.sqrt(2 - 2 * c)), float(c)) for row, c in enumerate(cosines)]
    return sorted(hits, key=lambda hit: hit.distance)


def test_another_photo_of_the_scene_comes_before_a_look_alike():
    query, vectors, names = _scene()
    hits = _hits(query, vectors, names)
    assert [hit.path for hit in hits] == ["near", "look-alike", "further", "far"]  # the embedding's order
    reordered = shortlist.reordered(_Index(vectors), query, hits, first=40)
    assert [hit.path for hit in reordered] == ["near", "further", "look-alike", "far"]
    assert {hit.path: hit.distance for hit in reordered} == {hit.path: hit.distance for hit in hits}


def test_the_querys_own_file_stays_before_a_near_twin():
    """Two pictures the network can hardly tell apart average to nearly the same vector, and
    either could come first; a candidate is never ranked below its own likeness, so the query's
    own file stays first (a search for an image's own bytes found its twin first)."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12, 8))
    vectors[1] = vectors[0] + 1e-4 * rng.normal(size=8)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = _hits(vectors[0], vectors, [f"img{row}" for row in range(12)])
    assert [hit.path for hit in hits[:2]] == ["img0", "img1"]
    assert [hit.path for hit in shortlist.reordered(_Index(vectors), vectors[0], hits, first=40)[:2]] == [
        "img0",
        "img1",
    ]


def test_only_the_first_are_reordered_and_other_metrics_keep_the_embeddings_order():
    query, vectors, names = _scene()
    hits = _hits(query, vectors, names)
    assert shortlist.reordered(_Index(vectors), query, hits, first=3) == hits  # too few to say
    assert shortlist.reordered(_Index(vectors, metric="euclidean"), query, hits, first=40) == hits


def test_a_live_addition_keeps_its_own_likeness():
    query, vectors, names = _scene()
    hits = _hits(query, vectors, names)
    added = Hit(7, "added", float(np.sqrt(2 - 2 * 0.82)), 0.82)  # no stored vector: searched live
    # placed by its own likeness among the others' scores: near 0.90 (its own), further 0.80 (augmented)
    reordered = shortlist.reordered(_Index(vectors), query, [hits[0], added, *hits[1:]], first=40)
    assert [hit.path for hit in reordered] == ["near", "added", "further", "look-alike", "far"]


def test_the_vectors_the_shortlist_reads_are_the_ones_the_index_holds(tmp_path, tiny_config):
    from helpers import quiet_build, write_images
    from imgsim.search import annoy_index

    write_images(tmp_path / "photos", 12)
    cfg = tiny_config.replace(index_dir=tmp_path / "index")
    quiet_build(tmp_path / "photos", cfg)
    index = annoy_index.open_index(cfg.index_dir)
    rows = [7, 2, 11, 0]
    one_by_one = np.stack([index.stored_vector(row) for row in rows])
    np.testing.assert_allclose(index.stored_vectors_of(rows), one_by_one, atol=1e-6)
