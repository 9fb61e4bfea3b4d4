"""The product as a newcomer meets it: ``make demo`` in a copy of the checkout, with its default
relative paths (``rsc_files/`` inside it), then the pages in a real browser.

Every other test builds into absolute temporary folders, which once hid that every picture of the
demo was broken (a relative thumbnail path read against the package's folder). Here the copy is
what a clone holds, plus make's ``.venv`` (linked, already installed) and ``../shared`` beside it
(the offline stand-in for InceptionV3's weights that ``img2vec.py --sample`` documents).
tests/test_readme.py runs the README's commands in the same copy, against the same service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request

import pytest

from demo import Demo, screenshot_dir
from helpers import needs_chromium, page_wait

pytestmark = [needs_chromium, pytest.mark.slow]  # make demo in a copy of the checkout, and Chromium


def _every_picture_loaded(browser) -> list[str]:
    """The pictures of the page that did not load (lazy ones asked to load now), after waiting
    for every one to finish; also asserts that the page shows at least one."""

    browser.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    page_wait(browser, 60).until(
        lambda b: b.execute_script("return [...document.images].every(i => i.complete)")
    )
    assert browser.execute_script("return document.images.length") > 0
    return browser.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.currentSrc || i.src)"
    )


def _console_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_demo_search_pages_show_every_picture(demo: Demo, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    wait = page_wait(browser, 60)
    browser.get(demo.url + "/")
    browser.find_element(By.ID, "image-input").send_keys(str(demo.sample("coffee.png")))
    wait.until(ready.presence_of_element_located((By.ID, "results")))
    results = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert len(results) == 10
    assert results[0].find_element(By.CSS_SELECTOR, ".path").text == "coffee.png"
    assert _every_picture_loaded(browser) == []
    shot = screenshot_dir(tmp_path) / "results-page.png"
    browser.save_screenshot(str(shot))

    results[1].find_element(By.CSS_SELECTOR, "a.search-by").click()  # search by a result
    wait.until(ready.url_contains("/search?id="))
    wait.until(ready.presence_of_element_located((By.ID, "results")))
    assert _every_picture_loaded(browser) == []
    assert _console_errors(browser) == []
    assert demo.server_errors() == []


@pytest.mark.parametrize("page", ["/duplicates", "/map"])
def test_the_demo_collection_pages_show_every_picture(demo: Demo, browser, page):
    browser.get(demo.url + page)
    assert _every_picture_loaded(browser) == []
    assert _console_errors(browser) == []
    assert demo.server_errors() == []


def test_the_demo_duplicates_say_what_each_copy_is(demo: Demo):
    """scikit-image's chessboard_GRAY.png shows chessboard_RGB.png's gray pixels in one channel."""
    with urllib.request.urlopen(demo.url + "/duplicates?format=json", timeout=60) as reply:
        groups = json.load(reply)["groups"]
    members = {member["path"]: member for group in groups for member in group["members"]}
    gray, rgb = members["chessboard_GRAY.png"], members["chessboard_RGB.png"]
    copy = gray if gray["what"] else rgb
    assert copy is gray and "grayscale" in gray["what"], groups


def test_the_demo_said_which_model_it_used_and_no_tensorflow_chatter(demo: Demo):
    log = demo.log()
    assert "Using the pretrained EfficientNet-Lite0" in log
    assert re.search(r"Indexed 28 images into rsc_files/versions/", log)
    assert "absl::InitializeLog" not in log and "oneDNN custom operations" not in log
    assert (demo.checkout / "rsc_files" / "current").is_symlink()


def test_the_readme_picture_is_the_results_page(tmp_path):
    """The README shows what the service shows: docs/results-page.png, a screenshot that
    test_the_demo_search_pages_show_every_picture takes (IMGSIM_SCREENSHOTS=docs keeps it there)."""
    from helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "](docs/results-page.png)" in readme
    assert (ROOT / "docs" / "results-page.png").stat().st_size > 20_000
    assert shutil.which("make") is not None and os.path.isdir(ROOT / "docs")
