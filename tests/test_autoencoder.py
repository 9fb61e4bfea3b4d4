"""Reducers: PCA and the dense autoencoder, judged by how many true neighbours they keep."""

import numpy as np
import pytest

from imgsim.models import reducers


def _clustered(count=600, width=64, rank=8, seed=0):
    """Vectors that really live on a low-dimensional subspace, plus a little noise."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, width))
    return (rng.normal(size=(count, rank)) @ basis + 0.01 * rng.normal(size=(count, width))).astype(
        np.float32
    )


def test_neighbour_preservation_on_a_hand_made_example():
    full = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    assert reducers.neighbour_preservation(full, full, k=1) == 1.0
    regrouped = full[[0, 2, 1, 3]]  # pairs (0,1) and (2,3) become (0,2) and (1,3)
    assert reducers.neighbour_preservation(full, regrouped, k=1) == 0.0
    half = full[[0, 1, 3, 2]]  # rows 2 and 3 swap places: still each other's nearest
    assert reducers.neighbour_preservation(full, half, k=1) == 1.0


def test_pca_keeps_neighbours_of_low_rank_data():
    vectors = _clustered()
    reduce = reducers.pca_reducer(reducers.fit_pca(vectors, 8))
    reduced = reduce(vectors)
    assert reduced.shape == (600, 8)
    assert reducers.neighbour_preservation(vectors, reduced, k=10) > 0.9


def test_whitening_gives_every_kept_direction_the_same_weight():
    """PCA whitening (--reduce whiten): the collection's own vectors, reduced, vary as much along
    each kept direction, and the projection is PCA's scaled direction by direction."""
    vectors = _clustered()
    fitted = reducers.fit_whitening(vectors, 8)
    whitened = reducers.pca_reducer(fitted)(vectors)
    assert np.allclose(whitened.var(axis=0, ddof=1), 1.0, atol=1e-3)
    projected = reducers.pca_reducer({"mean": fitted["mean"], "components": fitted["components"]})(vectors)
    assert np.allclose(whitened, projected * fitted["scale"], atol=1e-5)


def test_autoencoder_trains_and_beats_a_random_projection():
    vectors = _clustered()
    encoder = reducers.train_autoencoder(vectors, dims=8, epochs=40, batch_size=64, verbose=0)
    reduced = reducers.keras_reducer(encoder)(vectors)
    assert reduced.shape == (600, 8)
    random_projection = vectors @ np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    kept = reducers.neighbour_preservation(vectors, reduced, k=10)
    assert kept > reducers.neighbour_preservation(vectors, random_projection, k=10)
    assert kept > 0.5


def test_reducing_needs_enough_images():
    with pytest.raises(ValueError, match="at least 256 images"):
        reducers.fit_pca(np.ones((20, 512), np.float32), 256)
