"""--precision auto|f32|bf16|int8: measured agreement with f32 decides, and an index keeps its choice."""

import numpy as np
import pytest

from helpers import flower_subset, quiet_build, requires_shared
from imgsim import config
from imgsim.images import imaging
from imgsim.index import store
from imgsim.index.model_key import ModelKey
from imgsim.indexing import indexer
from imgsim.models import agreement, embedders, runtimes
from imgsim.search import annoy_index

pytestmark = pytest.mark.slow  # every precision of the shared model, int8 quantization

needs_bf16 = pytest.mark.skipif(
    "bf16" not in runtimes.native_precisions(), reason="this CPU has no native bf16 (OpenVINO lists none)"
)


def _flowers_config(tmp_path, **changes) -> config.Config:
    settings = dict(
        index_dir=tmp_path / "index",
        model=str(config.SHARED_MODEL),
        weights="none",
        trees=10,
        recall_sample=0,
        model_cache=str(tmp_path / "cache"),
    )
    return config.Config(**(settings | changes))


def _rank1_of_every_photo(cfg: config.Config, folder, query_precision: str, log=lambda _: None) -> float:
    """Share of the collection's own files found first when searched as uploads at ``query_precision``."""
    index = annoy_index.open_index(cfg.index_dir)
    runtime = runtimes.Runtime("openvino", cfg.index_dir / "cache", precision=query_precision, log=log)
    embedder = embedders.for_index(index.manifest, index.version, runtime)
    assert embedder.precision == query_precision
    vectors = embedder.embed_images(imaging.open_rgb(folder / item.path) for item in index.items)
    sha1 = {item.id: item.sha1 for item in index.items}  # flowers5 holds a few byte-identical photos
    found = [sha1[index.search(vector, 1)[0].id] for vector in vectors]
    return float(np.mean([got == item.sha1 for got, item in zip(found, index.items, strict=True)]))


def test_a_precision_that_moves_vectors_misses_the_gates_by_how_much():
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(40, 64)).astype(np.float32)
    owners = np.repeat(np.arange(8), 2)
    copies = originals[owners] + 0.05 * rng.normal(size=(16, 64)).astype(np.float32)
    moved = (originals + 0.4 * rng.normal(size=originals.shape), copies + 0.4 * rng.normal(size=copies.shape))
    kept = agreement.compare("bf16", (originals, copies), (originals * 1.0001, copies), owners)
    missed = agreement.compare("int8", (originals, copies), moved, owners)
    assert kept.passed and kept.mean_cosine > 0.999 and kept.top10 == 1.0
    assert not missed.passed and any(miss.startswith("mean cosine") for miss in missed.misses)


def test_the_choice_is_the_fastest_candidate_that_agrees_and_f32_when_none_does():
    rng = np.random.default_rng(1)
    photos, copies, owners = rng.normal(size=(30, 16)), rng.normal(size=(0, 16)), np.array([], int)

    def exact(x: np.ndarray) -> np.ndarray:
        return x

    def noisy(x: np.ndarray) -> np.ndarray:
        return x + rng.normal(size=x.shape)

    chosen, measured, vectors = agreement.choose(
        ["int8", "bf16", "f32"],
        {"f32": exact, "int8": noisy, "bf16": exact}.get,
        photos,
        copies,
        owners,
        lambda: 0,
    )
    assert chosen == "bf16" and [m.precision for m in measured] == ["f32", "int8", "bf16"]
    assert not measured[1].passed and measured[2].passed and np.array_equal(vectors, photos)
    chosen, _, _ = agreement.choose(
        ["int8"], {"f32": exact, "int8": noisy}.get, photos, copies, owners, lambda: 0
    )
    assert chosen == "f32"


@needs_bf16
def test_choosing_the_precision_embeds_a_batch_at_a_time(photos, tiny_config, monkeypatch):
    """The sample went through the network in one pass: a first build's peak memory was that
    pass's (2,650 MB for 150 photos with EfficientNet-Lite0, against 426 MB for the rest)."""
    from imgsim.indexing import collection, precision

    passes, embed = [], embedders.Embedder.embed

    def counted(self, pixels):
        passes.append(len(pixels))
        return embed(self, pixels)

    monkeypatch.setattr(embedders.Embedder, "embed", counted)
    cfg = tiny_config.replace(batch_size=4, precision="auto")
    _, entries, _ = collection.scan(photos)
    key = embedders.from_config(cfg.replace(precision="f32"), lambda _: None).key
    passes.clear()
    choice = precision.decide(cfg, entries, None, key, None, lambda _: None)
    assert choice.how == "measured" and len(choice.vectors) == 12
    assert passes and max(passes) <= 4


def test_a_cpu_without_the_precision_asked_for_runs_the_next_one_down_and_says_so(monkeypatch):
    monkeypatch.setattr(runtimes, "capabilities", lambda: frozenset({"FP32", "INT8"}))
    said = []
    assert runtimes.runnable("bf16", said.append) == "f32"
    assert runtimes.runnable("int8", said.append) == "int8"
    assert len(said) == 1 and "no native bf16" in said[0] and "running f32" in said[0]


def test_precision_names_are_checked():
    with pytest.raises(config.ConfigError, match="precision must be one of auto, f32, bf16, int8"):
        config.load({"IMGSIM_PRECISION": "fp16"})


def test_model_keys_name_the_precision_only_where_it_is_not_f32():
    key = embedders.model_key("inception_v3", None, 0, "gem", True)
    assert str(key) == "inception_v3:None:299|gem,trim"
    assert str(key.at("bf16")) == "inception_v3:None:299|gem,trim,bf16"
    assert key.at("int8").precision == "int8" and key.at("int8").at("f32") == key
    bf16 = ModelKey.parse("inception_v3:None:299|gem,trim,bf16")
    assert bf16 == key.at("bf16") and (bf16.pooling, bf16.trim, bf16.image_size) == ("gem", True, 299)


@requires_shared
@needs_bf16
def test_auto_measures_once_records_why_and_later_builds_keep_the_choice(tmp_path):
    folder = flower_subset(tmp_path / "flowers", per_class=8)
    cfg = _flowers_config(tmp_path)
    said: list[str] = []
    indexer.build_index(folder, cfg, progress=False, log=said.append)
    manifest = store.read_manifest(store.current_version(cfg.index_dir))
    choice = manifest.precision_choice
    assert choice is not None and (choice.asked, choice.how) == ("auto", "measured")
    assert [m.precision for m in choice.measured][0] == "f32"
    assert manifest.precision == manifest.model_key.precision
    chosen = next(m for m in choice.measured if m.precision == manifest.precision)
    assert chosen.passed and chosen.mean_cosine >= agreement.GATES.mean_cosine
    assert any(line.startswith("Measuring") for line in said)
    # the sample was the whole collection: its vectors at the chosen precision are the index's
    assert not any(line.startswith("Model ") for line in said)  # the network did not run again
    assert _rank1_of_every_photo(cfg, folder, manifest.precision) == 1.0
    (folder / "rose" / sorted((folder / "rose").iterdir())[0].name).unlink()
    said.clear()
    indexer.build_index(folder, cfg, progress=False, log=said.append)
    again = store.read_manifest(store.current_version(cfg.index_dir))
    assert not any(line.startswith("Measuring") for line in said)
    assert (again.model_key, again.precision_choice) == (manifest.model_key, manifest.precision_choice)


@requires_shared
@needs_bf16
@pytest.mark.parametrize("built, queried", [("f32", "bf16"), ("bf16", "f32")])
def test_an_index_searched_at_another_precision_still_finds_every_exact_copy_first(tmp_path, built, queried):
    folder = flower_subset(tmp_path / "flowers", per_class=6)
    cfg = _flowers_config(tmp_path, precision=built)
    quiet_build(folder, cfg)
    assert store.read_manifest(store.current_version(cfg.index_dir)).model_key.precision == built
    assert _rank1_of_every_photo(cfg, folder, queried) == 1.0


@requires_shared
@needs_bf16
def test_a_bf16_index_on_a_cpu_without_bf16_queries_in_f32_and_says_so(tmp_path, monkeypatch):
    folder = flower_subset(tmp_path / "flowers", per_class=4)
    cfg = _flowers_config(tmp_path, precision="bf16")
    quiet_build(folder, cfg)
    index = annoy_index.open_index(cfg.index_dir)
    monkeypatch.setattr(runtimes, "capabilities", lambda: frozenset({"FP32"}))
    said: list[str] = []
    runtime = runtimes.Runtime("openvino", tmp_path / "cache", log=said.append)
    embedder = embedders.for_index(index.manifest, index.version, runtime)
    assert embedder.precision == "f32" and embedder.key == index.manifest.model_key
    assert said == ["This CPU has no native bf16 (OpenVINO lists FP32): running f32 instead."]


@requires_shared
def test_int8_is_quantized_on_the_collection_carried_by_the_version_and_kept(tmp_path):
    folder = flower_subset(tmp_path / "flowers", per_class=6)
    cfg = _flowers_config(tmp_path, precision="int8", precision_sample=30)
    quiet_build(folder, cfg)
    version = store.current_version(cfg.index_dir)
    manifest = store.read_manifest(version)
    network = manifest.model_key.at("f32")
    choice = manifest.precision_choice
    assert manifest.precision == "int8" and choice is not None and choice.how == "asked"
    assert runtimes.is_quantized(version / runtimes.INT8_FOLDER, network)
    assert choice.measured == []  # asked for by name: run as asked
    assert _rank1_of_every_photo(cfg, folder, "int8") == 1.0
    calibrated = (version / runtimes.INT8_FOLDER / runtimes.KEY_FILE).read_text()
    (folder / "tulip" / sorted((folder / "tulip").iterdir())[0].name).unlink()
    quiet_build(folder, cfg)  # the same quantized model: the index's vectors stay comparable
    after = store.current_version(cfg.index_dir)
    assert after != version and (after / runtimes.INT8_FOLDER / runtimes.KEY_FILE).read_text() == calibrated


@requires_shared
@needs_bf16
def test_stats_say_what_the_index_was_built_in_and_what_this_worker_queries_in(tmp_path):
    from helpers import ADMIN
    from imgsim.serve import app as app_module

    folder = flower_subset(tmp_path / "flowers", per_class=4)
    cfg = _flowers_config(tmp_path, precision="bf16", admin_token="s3cret-token-of-the-tests")
    quiet_build(folder, cfg)
    client = app_module.create_app(cfg).test_client()
    stats = client.get("/stats", headers=ADMIN).get_json()
    assert stats["index"]["precision"] == "bf16" and stats["query_precision"] == "bf16"
    assert stats["index"]["precision_choice"]["asked"] == "bf16"
