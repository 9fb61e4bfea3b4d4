"""Plain helpers the tests share: generated images, a quiet build, requests to the service."""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsim import config
from imgsim.duplicates import pair_evidence
from imgsim.indexing import indexer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-of-the-tests"
JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
ADMIN = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
FLOWER_CLASSES = ("daisy", "dandelion", "rose", "sunflower", "tulip")
HOLIDAYS = config.SHARED_DIR / "datasets" / "holidays_a" / "jpg"  # the shared INRIA Holidays photos

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (scripts/install-system.sh installs them)",
)
requires_shared = pytest.mark.skipif(
    not (config.SHARED_MODEL.is_file() and config.SHARED_FLOWERS.is_dir()),
    reason=f"needs the shared pretrained model and flowers5 photos in {config.SHARED_DIR} (absent here)",
)


def flower_subset(folder: Path, per_class: int = 30, seed: int = 0) -> Path:
    """A fixed random subset of the shared flowers5, copied into ``folder`` as class/file.jpg (links
    to files outside a collection are not indexed)."""
    rng = random.Random(seed)
    for name in FLOWER_CLASSES:
        photos = sorted((config.SHARED_FLOWERS / name).glob("*.jpg"))
        (folder / name).mkdir(parents=True)
        for photo in rng.sample(photos, per_class):
            shutil.copyfile(photo, folder / name / photo.name)
    return folder


def tiny_settings(index_dir: Path, model: str) -> config.Config:
    """The tiny model's settings (tiny_config gives them per test, on tmp_path/index)."""
    return config.Config(
        index_dir=index_dir, model=model, image_size=32, batch_size=4, trees=10, checkpoint_every=8
    )


def write_images(folder: Path, count: int, size: int = 48, seed: int = 0, prefix: str = "img") -> list[Path]:
    """Distinct little pictures: a random background colour with a random rectangle on it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = np.empty((size, size, 3), dtype=np.uint8)
        pixels[:] = rng.integers(0, 256, 3)
        x, y = rng.integers(0, size // 2, 2)
        pixels[y : y + size // 2, x : x + size // 2] = rng.integers(0, 256, 3)
        path = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def png(size: tuple[int, int] = (40, 40), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def quiet_build(dataset, cfg, **options) -> indexer.BuildReport:
    """indexer.build_index without a progress bar or log lines: the tests read its report."""
    return indexer.build_index(dataset, cfg, progress=False, log=lambda _: None, **options)


def search_hits(client, data: bytes, k: int = 3) -> list[dict]:
    """The results of searching with an image's bytes, asserting that the search succeeded."""
    reply = client.post(f"/search?k={k}", data=data, content_type="image/png")
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["results"]


def upload(client, data: bytes, headers=JSON, query: str = "", name: str = "photo.png", **fields):
    """POST /search with the image in a form field, as the upload page sends it."""
    form = {"image": (io.BytesIO(data), name), **fields}
    return client.post("/search" + query, data=form, headers=headers, content_type="multipart/form-data")


class AdminActions:
    """Adds and removes images through the admin endpoints, with the token."""

    def __init__(self, client):
        self._client = client

    def add(self, data: bytes, name: str = "holiday.png", **fields):
        form = {"image": (io.BytesIO(data), name), **fields}
        return self._client.post("/images", data=form, headers=ADMIN, content_type="multipart/form-data")

    def remove(self, item_id: int):
        return self._client.delete(f"/images/{item_id}", headers=ADMIN)


def on_live_backend(request, cfg: config.Config) -> config.Config:
    """``cfg`` on the live-layer backend that ``request.param`` names ("sqlite" or "postgresql"):
    modules whose tests must hold on both override service_config with a parametrized fixture."""
    if request.param == "sqlite":
        return cfg
    return cfg.replace(live_url=request.getfixturevalue("live_url"))


def page_wait(browser, seconds: float = 30):
    """A WebDriverWait that retries through a page changing under it: while a link or a form
    replaces the document, Chrome may answer a lookup made on the old one with "Node with given id
    does not belong to the document", a plain WebDriverException that selenium's own waits do not
    retry (a test once failed on that race, not on the page)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, ignored_exceptions=(WebDriverException,))


def evidence_in(folder: Path, items: list) -> pair_evidence.Evidence:
    """All that judging a candidate pair reads of the items' files in ``folder`` (as a build does)."""
    return pair_evidence.Evidence(
        pair_evidence.features_of(folder, items, 10**8),
        pictures=pair_evidence.pictures_of(folder, items, 10**8),
        sizes=pair_evidence.sizes_of(folder, items),
        grays=pair_evidence.grays_of(folder, items, 10**8),
    )
