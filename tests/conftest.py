"""Fixtures named for what they give: a tiny model and its config, photos, an app, a client, an admin."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras' folder, and with it the cache of converted (OpenVINO) models, is one of this run's, never
# the user's ~/.keras; the servers the tests start inherit it.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="imgsim-test-keras-")

import demo as demo_module  # noqa: E402
import servers  # noqa: E402
from helpers import (  # noqa: E402
    CHROMEDRIVER,
    CHROMIUM,
    ROOT,
    TOKEN,
    AdminActions,
    quiet_build,
    tiny_settings,
    write_images,
)
from imgsim import config  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def keras_home():
    """The run's Keras folder and converted models, removed at the end."""
    yield Path(os.environ["KERAS_HOME"])
    shutil.rmtree(os.environ["KERAS_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A small random-weight CNN saved as a bring-your-own .keras model.

    It exercises the pipeline's mechanics (batching, incremental runs, swaps) quickly; it says
    nothing about retrieval quality, which the tests with the shared pretrained model cover.
    Its input size is free, so --image-size can make it as slow as a test needs.
    """
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return str(path)


@pytest.fixture
def tiny_config(tmp_path, tiny_model) -> config.Config:
    return tiny_settings(tmp_path / "index", tiny_model)


@pytest.fixture
def photos(tmp_path) -> Path:
    """A collection of 12 generated images, img0000.png ... img0011.png."""
    folder = tmp_path / "photos"
    write_images(folder, 12)
    return folder


@pytest.fixture
def service_config(tiny_config) -> config.Config:
    """The tiny model with small limits, an admin token and a fast reload, as the app tests want."""
    return tiny_config.replace(
        admin_token=TOKEN, reload_interval=0.1, max_upload_bytes=200_000, max_image_pixels=1_000_000
    )


@pytest.fixture
def app(photos, service_config):
    """The service over an index of ``photos``."""
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    quiet_build(photos, service_config)
    application = app_module.create_app(service_config)
    yield application
    web.service_of(application).close()


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL for the whole run (initdb into a temporary directory, pg_ctl)."""
    if servers.postgres_bin() is None:
        pytest.skip("needs Debian's postgresql package (scripts/install-system.sh installs it)")
    with servers.postgres() as admin_url:
        yield admin_url


@pytest.fixture
def live_url(postgres_server, request) -> str:
    """A fresh PostgreSQL database for one test's live layer."""
    return servers.new_database(postgres_server, f"t{next(_DATABASES)}")


_DATABASES = itertools.count()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin(client) -> AdminActions:
    return AdminActions(client)


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium driven by Selenium, its console kept for the test to read."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for tests to read
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """``make demo`` running in a copy of the checkout (tests/demo.py), for every test that
    meets the product as a newcomer does; stopped at the end of the run."""
    if not (ROOT / ".venv" / ".package").is_file():
        pytest.skip("needs make's .venv (make test builds it)")
    with demo_module.running(tmp_path_factory.mktemp("newcomer")) as running:
        yield running
