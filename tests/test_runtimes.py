"""The OpenVINO runtime: the same vectors as TensorFlow, converted once, and no TensorFlow to answer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, quiet_build, requires_shared, write_images
from imgsim import config
from imgsim.images import imaging
from imgsim.index import store
from imgsim.models import embedders, runtimes
from imgsim.search import annoy_index

pytestmark = pytest.mark.slow  # InceptionV3 and the shared model on two runtimes


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _openvino(tmp_path, log=None) -> runtimes.Runtime:
    return runtimes.Runtime("openvino", tmp_path / "cache", log=log or (lambda _: None))


# the keras.applications module that holds each backbone's own preprocess_input
KERAS_MODULES = {
    "inception_v3": "inception_v3",
    "vgg19": "vgg19",
    "resnet50": "resnet50",
    "mobilenet_v2": "mobilenet_v2",
    "efficientnetb0": "efficientnet",
}


@pytest.mark.parametrize("backbone", sorted(embedders.BACKBONES))
def test_numpy_preprocessing_equals_keras_preprocess_input(backbone):
    import keras

    mode, module = embedders.BACKBONES[backbone][1], KERAS_MODULES[backbone]
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype(np.float32)
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(embedders.preprocess_function(mode)(pixels), expected, rtol=1e-6, atol=1e-4)


def test_inception_v3_on_openvino_gives_tensorflows_vectors(tmp_path):
    on_tf = embedders.load_embedder("inception_v3", weights=None)  # random weights: shape and equality
    folder = tmp_path / "inception"
    runtimes.convert(on_tf.model, folder, on_tf.key)
    network = runtimes.OpenVinoModel(folder)
    assert (network.input_size, network.dim) == (299, 2048)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 299, 299, 3)).astype(np.uint8)
    converted = network.predict_on_batch(on_tf.preprocess(pixels.astype(np.float32)))
    assert converted.shape == (3, 2048) and converted.dtype == np.float32
    assert _cosines(on_tf.embed(pixels), converted).min() >= 0.999


@requires_shared
def test_the_shared_model_gives_the_same_flower_vectors_on_both_runtimes(tmp_path):
    photos = sorted(config.SHARED_FLOWERS.glob("*/*.jpg"))[::400][:8]
    on_tf = embedders.load_embedder(str(config.SHARED_MODEL))
    on_ov = embedders.load_embedder(str(config.SHARED_MODEL), runtime=_openvino(tmp_path))
    assert (on_tf.runtime, on_ov.runtime) == ("tensorflow", "openvino")
    assert on_ov.key == on_tf.key and on_ov.input_size == on_tf.input_size
    images = [imaging.open_rgb(p, min_side=on_tf.decode_side) for p in photos]
    cosines = _cosines(on_tf.embed_images(images), on_ov.embed_images(images))
    print("cosines", np.round(cosines, 6))
    assert cosines.min() >= 0.999


def test_a_converted_model_is_cached_and_loads_without_tensorflow(tmp_path, tiny_model):
    first = embedders.load_embedder(tiny_model, None, 32, _openvino(tmp_path))
    assert first.runtime == "openvino" and first.converted.parent == tmp_path / "cache"
    script = (
        "import sys, pathlib; from imgsim.models import embedders, runtimes; "
        "on = runtimes.Runtime('openvino', pathlib.Path(sys.argv[2])); "
        "e = embedders.load_embedder(sys.argv[1], None, 32, on); "
        "import numpy as np; v = e.embed(np.zeros((2, 32, 32, 3), np.uint8)); "
        "print(e.runtime, v.shape, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, tiny_model, str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout.split() == ["openvino", "(2,", "16)", "False", "False"], run.stderr


def test_a_failed_conversion_says_so_in_one_line_and_runs_on_tensorflow(tmp_path, tiny_model, monkeypatch):
    def broken(*args):
        raise RuntimeError("Unsupported operation: MysteryOp\nmore detail")

    said = []
    monkeypatch.setattr(runtimes, "convert", broken)
    embedder = embedders.load_embedder(tiny_model, None, 32, _openvino(tmp_path, said.append))
    assert embedder.runtime == "tensorflow" and embedder.converted is None
    assert said == [
        "OpenVINO could not convert tiny (Unsupported operation: MysteryOp); "
        "running it on TensorFlow instead."
    ]
    assert embedder.embed(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 16)


def test_a_damaged_cached_conversion_falls_back_to_tensorflow(tmp_path, tiny_model):
    first = embedders.load_embedder(tiny_model, None, 32, _openvino(tmp_path))
    (first.converted / runtimes.MODEL_XML).write_text("<net>truncated")
    said = []
    again = embedders.load_embedder(tiny_model, None, 32, _openvino(tmp_path, said.append))
    assert again.runtime == "tensorflow" and said[0].startswith("OpenVINO could not load tiny (")


def test_the_manifest_records_the_runtime_and_the_version_carries_the_conversion(tmp_path, tiny_config):
    write_images(tmp_path / "photos", 6)
    version = quiet_build(tmp_path / "photos", tiny_config).version
    manifest = store.read_manifest(version)
    assert manifest.runtime == "openvino"
    assert runtimes.is_converted(version / runtimes.VERSION_FOLDER, manifest.model_key.at("f32"))
    (tmp_path / "photos" / "img0005.png").unlink()  # a rebuild that embeds nothing keeps it
    version = quiet_build(tmp_path / "photos", tiny_config).version
    assert runtimes.is_converted(version / runtimes.VERSION_FOLDER, manifest.model_key.at("f32"))

    on_tf = tiny_config.replace(index_dir=tmp_path / "tf", runtime="tensorflow")
    version = quiet_build(tmp_path / "photos", on_tf).version
    assert store.read_manifest(version).runtime == "tensorflow"
    assert not (version / runtimes.VERSION_FOLDER).exists()


def test_vectors_embedded_on_one_runtime_are_reused_on_the_other(tmp_path, tiny_config):
    """The model key does not name the runtime: both give the same vectors, so nothing re-embeds."""
    write_images(tmp_path / "photos", 6)
    quiet_build(tmp_path / "photos", tiny_config.replace(runtime="tensorflow"))
    write_images(tmp_path / "photos", 7)  # one new image
    report = quiet_build(tmp_path / "photos", tiny_config)
    assert (report.embedded, report.reused) == (1, 6)
    index = annoy_index.open_index(tiny_config.index_dir)
    query = embedders.for_index(index.manifest, index.version, _openvino(tmp_path))
    vector = query.embed_images([imaging.open_rgb(tmp_path / "photos" / "img0002.png")])[0]
    assert index.search(vector, k=1)[0].path == "img0002.png"


def test_a_service_worker_on_openvino_answers_without_importing_tensorflow(tmp_path, tiny_config):
    write_images(tmp_path / "photos", 6)
    quiet_build(tmp_path / "photos", tiny_config)
    script = (
        "import sys, json; from imgsim import config; from imgsim.images import imaging; "
        "from imgsim.serve import service; "
        "svc = service.assemble(config.load()); "
        "answer = svc.searching.search_image(imaging.open_rgb(sys.argv[1]), 2); "
        "print(json.dumps([answer.hits[0].path, answer.snap.embedder.runtime, "
        "'tensorflow' in sys.modules, 'keras' in sys.modules]))"
    )
    env = os.environ | config.to_environ(tiny_config)
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "photos" / "img0003.png")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["img0003.png", "openvino", False, False]


def test_the_runtime_setting_is_checked():
    with pytest.raises(config.ConfigError, match="runtime must be one of openvino, tensorflow"):
        config.load({"IMGSIM_RUNTIME": "onnx"})
    assert config.load({}).runtime == "openvino"
    assert config.decode_threads(config.Config()) == os.cpu_count()
    assert config.decode_threads(config.Config(decode_workers=3)) == 3


def test_a_version_serves_from_its_conversion_where_its_keras_file_is_gone(tmp_path, tiny_config):
    """A serving machine (the container) has the index, not the .keras file it was built from:
    loading the version failed with "unknown model" although it carries the converted network."""
    import shutil

    model = tmp_path / "copy-of-tiny.keras"
    shutil.copyfile(tiny_config.model, model)
    cfg = tiny_config.replace(model=str(model))
    write_images(tmp_path / "photos", 6)
    quiet_build(tmp_path / "photos", cfg)
    model.unlink()
    index = annoy_index.open_index(cfg.index_dir)
    embedder = embedders.for_index(index.manifest, index.version, runtimes.of(cfg))
    assert embedder.runtime == "openvino" and embedder.key == index.manifest.model_key
    image = imaging.open_rgb(tmp_path / "photos" / "img0003.png", min_side=embedder.decode_side)
    assert index.search(embedder.embed_images([image])[0], 1)[0].path == "img0003.png"


def test_openvino_and_nncf_send_no_telemetry():
    """Their sender forked a process that held a killed build's lock (and called Google Analytics)."""
    code = (
        "import imgsim.models.runtimes, nncf\n"
        "from openvino.tools.ovc import telemetry_utils\n"
        "try:\n    import openvino_telemetry\nexcept ImportError:\n    print('blocked')\n"
        "print(type(nncf.telemetry.telemetry).__name__, telemetry_utils.tm.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    blocked, nncf_sender, ovc_sender = out.stdout.split()
    assert (blocked, ovc_sender) == ("blocked", "openvino.tools.ovc.telemetry_stub")
    assert nncf_sender != "NNCFTelemetry"  # its stub (a MagicMock where it sees a test running)
