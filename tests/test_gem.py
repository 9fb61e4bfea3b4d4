"""GeM pooling in place of average pooling: same weights, the pooling the key names, both runtimes."""

import numpy as np
import pytest

from imgsim.index.model_key import ModelKey
from imgsim.models import embedders, runtimes


def _pixels(count=3, side=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, side, side, 3)).astype(np.float32)


def test_gem_with_power_one_is_the_average_and_with_three_the_generalised_mean(tiny_model):
    import keras

    from imgsim.models import gem

    network = keras.saving.load_model(tiny_model)
    x = _pixels()
    assert np.allclose(gem.with_gem(network, 1.0).predict_on_batch(x), network.predict_on_batch(x), atol=1e-6)
    features = keras.Model(network.input, network.layers[-2].output).predict_on_batch(x)
    expected = np.power(np.mean(np.maximum(features, 1e-6) ** 3, axis=(1, 2)), 1 / 3)
    assert np.allclose(gem.with_gem(network).predict_on_batch(x), expected, rtol=1e-4)


def test_a_model_without_average_pooling_keeps_its_own_and_says_so(tmp_path):
    import keras

    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.GlobalMaxPooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    path = tmp_path / "maxpool.keras"
    keras.Model(inputs, outputs).save(path)
    said = []
    embedder = embedders.load_embedder(
        str(path), None, 0, runtimes.Runtime("tensorflow", log=said.append), pooling="gem"
    )
    assert any("GeM pooling does not apply to maxpool" in line for line in said)
    assert embedder.embed(_pixels(1, 16)).shape == (1, 4)


def test_the_key_names_pooling_and_trimming_and_old_keys_read_as_before(tiny_model):
    key = embedders.model_key(tiny_model, None, 32, "gem", True)
    assert str(key).endswith(":32|gem,trim") and (key.pooling, key.trim, key.image_size) == ("gem", True, 32)
    plain = embedders.model_key(tiny_model, None, 32)
    assert "|" not in str(plain) and ModelKey.parse(str(plain)) == plain  # as indexes built before say it
    assert (plain.pooling, plain.trim, plain.image_size) == ("avg", False, 32)
    trimmed = embedders.model_key(tiny_model, None, 0, "avg", True)
    assert (trimmed.pooling, trimmed.trim, trimmed.image_size) == ("avg", True, 0)


def test_openvino_runs_the_gem_model_as_tensorflow_does(tiny_model, tmp_path):
    on_tf = embedders.load_embedder(tiny_model, None, 32, pooling="gem")
    on_ov = embedders.load_embedder(
        tiny_model, None, 32, runtimes.Runtime("openvino", tmp_path), pooling="gem"
    )
    assert on_ov.runtime == "openvino" and on_ov.key == on_tf.key
    x = _pixels()
    assert on_ov.embed(x) == pytest.approx(on_tf.embed(x), rel=1e-3, abs=1e-5)


def test_regional_pooling_takes_r_macs_regions_at_three_scales():
    """Tolias et al.'s regions: a 7 x 7 map holds 1 + 4 + 9 squares; a longer side holds more."""
    from imgsim.models import gem

    halves = [(top, left, 4) for top in (0, 3) for left in (0, 3)]
    thirds = [(top, left, 3) for top in (0, 2, 4) for left in (0, 2, 4)]
    assert gem.regions(7, 7) == [(0, 0, 7), *halves, *thirds]
    wide = gem.regions(11, 14)
    assert len(wide) == 2 + 6 + 12 and {side for _, _, side in wide} == {11, 7, 5}
    assert all(top + side <= 11 and left + side <= 14 for top, left, side in wide)
    assert sorted((left, top, side) for top, left, side in gem.regions(14, 11)) == sorted(wide)


def test_regional_pooling_sums_each_regions_gem_made_unit_length(tiny_model):
    import keras

    from imgsim.models import gem

    network = keras.saving.load_model(tiny_model)
    x = _pixels()
    features = keras.Model(network.input, network.layers[-2].output).predict_on_batch(x)
    assert features.shape[1:3] == (7, 7)

    def unit(vectors):
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)

    powered = np.maximum(features, 1e-6) ** 3
    summed = sum(
        unit(np.mean(powered[:, top : top + side, left : left + side], axis=(1, 2)) ** (1 / 3))
        for top, left, side in gem.regions(7, 7)
    )
    pooled = gem.with_regional(network, 32)
    assert pooled.input_shape == (None, 32, 32, 3)
    assert np.allclose(pooled.predict_on_batch(x), unit(summed), atol=1e-5)


def test_the_key_names_regional_pooling_and_reads_it_back(tiny_model):
    """Regression: a key stored only "gem", so a regional index's key read back as average pooling."""
    key = embedders.model_key(tiny_model, None, 32, "regional", True)
    assert str(key).endswith(":32|regional,trim") and ModelKey.parse(str(key)) == key
    assert ModelKey.parse(str(key.at("bf16"))).pooling == "regional"


def test_openvino_runs_the_regional_model_as_tensorflow_does(tiny_model, tmp_path):
    on_tf = embedders.load_embedder(tiny_model, None, 32, pooling="regional")
    on_ov = embedders.load_embedder(
        tiny_model, None, 32, runtimes.Runtime("openvino", tmp_path), pooling="regional"
    )
    assert on_ov.runtime == "openvino" and on_ov.key == on_tf.key and on_tf.key.pooling == "regional"
    x = _pixels()
    assert on_ov.embed(x) == pytest.approx(on_tf.embed(x), rel=1e-3, abs=1e-5)
    by_gem = embedders.load_embedder(tiny_model, None, 32, pooling="gem")
    assert on_tf.embed(x) != pytest.approx(by_gem.embed(x))
