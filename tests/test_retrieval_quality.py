"""End to end with a real pretrained model: similar flowers come back first."""

import numpy as np
import pytest

from helpers import flower_subset, quiet_build, requires_shared
from imgsim import config
from imgsim.index import store
from imgsim.models import embedders
from imgsim.search import annoy_index

pytestmark = pytest.mark.slow  # flowers5 through the shared model


def _leave_one_out_top1(index) -> float:
    vectors = store.read_vectors(index.version)
    matches = []
    for row, item in enumerate(index.items):
        hits = [h for h in index.search(vectors[row], k=2) if h.id != item.id]
        matches.append(hits[0].path.split("/")[0] == item.path.split("/")[0])
    return float(np.mean(matches))


@requires_shared
def test_pretrained_model_retrieves_the_same_flower_far_above_chance(tmp_path):
    photos = flower_subset(tmp_path / "flowers")
    cfg = config.Config(index_dir=tmp_path / "index", model=str(config.SHARED_MODEL), trees=50)
    report = quiet_build(photos, cfg)
    assert report.items == 150 and not report.skipped
    full = annoy_index.open_index(cfg.index_dir)
    top1 = _leave_one_out_top1(full)
    print(f"top-1 class match {top1:.3f}")
    assert top1 >= 0.5, f"top-1 class match {top1:.2f}; chance is 0.20"

    # PCA to 32-d reuses the stored embeddings (nothing re-embedded) and keeps most of the quality
    reduced = quiet_build(photos, cfg.replace(reduce="pca", dims=32))
    assert reduced.embedded == 0
    index = annoy_index.open_index(cfg.index_dir)
    assert index.manifest.dims == 32 and index.manifest.reduce == "pca"
    assert _leave_one_out_top1(index) >= top1 - 0.15

    # and a query photo from outside the index, through the same model, finds its own class
    query = sorted((config.SHARED_FLOWERS / "sunflower").glob("*.jpg"))[-1]
    embedder = embedders.for_index(index.manifest, index.version)
    from imgsim.images.imaging import open_rgb

    hits = index.search(embedder.embed_images([open_rgb(query)])[0], k=5)
    assert sum(h.path.startswith("sunflower/") for h in hits) >= 3


@requires_shared
def test_a_large_photo_shrunk_while_decoding_keeps_its_vector(tmp_path):
    """Camera-sized photos are decoded at reduced scale (twice the network's input): same vector."""
    import io

    from PIL import Image

    from imgsim.images import imaging

    embedder = embedders.load_embedder(str(config.SHARED_MODEL))
    photos = sorted(config.SHARED_FLOWERS.glob("*/*.jpg"))[::150][:5]
    for photo in photos:
        large = Image.open(photo).convert("RGB")
        large = large.resize((large.width * 3000 // max(large.size), large.height * 3000 // max(large.size)))
        buffer = io.BytesIO()
        large.save(buffer, "JPEG", quality=92)
        full = imaging.decode_rgb(buffer.getvalue())
        shrunk = imaging.decode_rgb(buffer.getvalue(), min_side=embedder.decode_side)
        assert min(shrunk.size) < min(full.size) // 2
        a, b = embedder.embed_images([full, shrunk])
        cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert cosine >= 0.99, (photo.name, cosine)
