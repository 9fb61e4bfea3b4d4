"""A person in a real (headless) Chromium: upload a photo, see the grid, click a result."""

import shutil
import threading

import pytest
from werkzeug.serving import make_server

from helpers import needs_chromium, page_wait, quiet_build, write_images
from imgsim.serve import app as app_module

pytestmark = [needs_chromium, pytest.mark.slow]  # headless Chromium


@pytest.fixture
def live_server(tmp_path, tiny_config):
    photos = tmp_path / "photos"
    write_images(photos, 15, size=96)
    yield from _served(photos, tiny_config)


def _served(photos, cfg):
    """The app over an index of ``photos``, on a free local port, for as long as the test runs."""
    quiet_build(photos, cfg)
    server = make_server("127.0.0.1", 0, app_module.create_app(cfg), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", photos
    server.shutdown()


def test_upload_see_results_and_search_by_a_result(live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    base, photos = live_server
    wait = page_wait(browser, 30)
    browser.get(base + "/")
    assert "Which images look like this one?" in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "#k-select option[value='5']").click()
    # choosing a file submits the form by itself (static/upload.js)
    browser.find_element(By.ID, "image-input").send_keys(str(photos / "img0007.png"))
    wait.until(ready.presence_of_element_located((By.ID, "results")))
    results = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert len(results) == 5
    assert results[0].find_element(By.CSS_SELECTOR, ".path").text == "img0007.png"
    assert "5 results" in browser.page_source and "from 15 images" in browser.page_source
    assert browser.find_element(By.ID, "query-image").get_attribute("src").startswith("data:image/jpeg")
    thumbnails_loaded = browser.execute_script(
        "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert thumbnails_loaded
    browser.save_screenshot(str(tmp_path / "results.png"))

    second = results[1].find_element(By.CSS_SELECTOR, ".path").text
    results[1].find_element(By.CSS_SELECTOR, "a.search-by").click()
    wait.until(ready.url_contains("/search?id="))
    wait.until(ready.presence_of_element_located((By.ID, "results")))
    assert second in browser.find_element(By.CSS_SELECTOR, ".query .meta a").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) == 5
    browser.save_screenshot(str(tmp_path / "search_by_result.png"))
    assert (tmp_path / "results.png").stat().st_size > 10_000


def _scripts_ready(browser, wait) -> None:
    """The page has finished loading, its scripts included: before that, a click on a button that
    a script serves does nothing (seen once under the full suite's load)."""
    wait.until(lambda _: browser.execute_script("return document.readyState") == "complete")


def test_draw_a_box_on_the_query_and_search_with_that_region(live_server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    base, photos = live_server
    wait = page_wait(browser, 30)
    browser.get(base + "/")
    browser.find_element(By.ID, "image-input").send_keys(str(photos / "img0003.png"))
    wait.until(ready.presence_of_element_located((By.ID, "results")))
    _scripts_ready(browser, wait)  # static/upload.js handles what comes next
    image = browser.find_element(By.ID, "query-image")
    width, height = image.size["width"], image.size["height"]
    drag = (
        ActionChains(browser).move_to_element_with_offset(image, -width // 4, -height // 4).click_and_hold()
    )
    drag.move_by_offset(width // 2, height // 2).release().perform()  # the middle half of the image
    button = browser.find_element(By.ID, "region-search")
    wait.until(lambda _: button.is_displayed())
    button.click()
    region = wait.until(ready.presence_of_element_located((By.ID, "query-region")))
    x, y, w, h = (float(v) for v in region.text.split("region ")[1].split(" (")[0].split(", "))
    assert abs(x - 0.25) < 0.05 and abs(y - 0.25) < 0.05 and abs(w - 0.5) < 0.05 and abs(h - 0.5) < 0.05
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) >= 1

    # on an indexed image the region is cut from its file, searched by id and box
    browser.find_element(By.CSS_SELECTOR, "#results a.search-by").click()
    wait.until(ready.url_contains("/search?id="))
    _scripts_ready(browser, wait)  # static/upload.js handles what comes next
    image = browser.find_element(By.ID, "query-image")
    wait.until(lambda _: image.size["width"] > 0)
    width, height = image.size["width"], image.size["height"]
    drag = (
        ActionChains(browser)
        .move_to_element_with_offset(image, -width // 2 + 2, -height // 2 + 2)
        .click_and_hold()
    )
    drag.move_by_offset(width // 2, height // 2).release().perform()  # the top-left quarter
    button = browser.find_element(By.ID, "region-search")
    wait.until(lambda _: button.is_displayed())
    button.click()
    wait.until(ready.url_contains("box="))
    wait.until(ready.presence_of_element_located((By.ID, "query-region")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) >= 1


@pytest.fixture
def copies_server(tmp_path, tiny_config):
    """The service over 15 photos and an exact copy of one, with admin deletes on."""
    photos = tmp_path / "photos"
    write_images(photos, 15, size=96)
    shutil.copy(photos / "img0003.png", photos / "img0003-copy.png")
    yield from _served(photos, tiny_config.replace(admin_token="browser-secret-token", reload_interval=0.1))


def test_delete_a_copy_from_the_duplicates_page_and_search_with_two_photos(copies_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    base, photos = copies_server
    wait = page_wait(browser, 30)
    browser.get(base + "/duplicates")
    group = browser.find_element(By.CSS_SELECTOR, ".copy-group[data-kind='exact']")
    assert "img0003-copy.png" in group.text and "img0003.png" in group.text
    browser.find_element(By.ID, "admin-token").send_keys("browser-secret-token")
    button = group.find_element(By.CSS_SELECTOR, ".delete-copy")
    copy = browser.find_element(By.ID, f"copy-{button.get_attribute('data-id')}")
    button.click()
    wait.until(ready.staleness_of(copy))  # deleted through DELETE /images/<id>, gone from the page
    browser.get(base + "/duplicates")
    assert not browser.find_elements(By.CSS_SELECTOR, ".copy-group[data-kind='exact']")

    browser.get(base + "/")
    browser.find_element(By.ID, "image-input").send_keys(
        f"{photos / 'img0001.png'}\n{photos / 'img0002.png'}"
    )
    combined = wait.until(ready.presence_of_element_located((By.ID, "query-combined")))
    assert combined.text.startswith("2 images together")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) >= 2


def test_more_results_for_an_upload_pages_on_from_its_preview(live_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    base, photos = live_server
    wait = page_wait(browser, 30)
    browser.get(base + "/")
    browser.find_element(By.CSS_SELECTOR, "#k-select option[value='5']").click()
    browser.find_element(By.ID, "image-input").send_keys(str(photos / "img0007.png"))
    wait.until(ready.presence_of_element_located((By.ID, "results")))
    _scripts_ready(browser, wait)  # static/upload.js handles what comes next
    first = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .path")]
    browser.find_element(By.ID, "more-results").click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".query"), "results 6–10"))
    second = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .path")]
    assert len(second) == 5 and not set(first) & set(second)
    assert browser.find_element(By.CSS_SELECTOR, "#results .rank").text == "#6"


@pytest.fixture
def decisions_server(tmp_path, tiny_config):
    """The service over 12 photos and exact copies of three of them, with decisions on."""
    photos = tmp_path / "photos"
    write_images(photos, 12, size=96)
    for name in ("img0003", "img0005", "img0007"):
        shutil.copy(photos / f"{name}.png", photos / f"{name}-copy.png")
    yield from _served(photos, tiny_config.replace(admin_token="browser-secret-token", reload_interval=0.1))


def _click_in_group(browser, wait, path: str, button: str) -> str:
    """Click ``button`` in the group showing ``path``; the status line it then shows."""
    from selenium.webdriver.common.by import By

    [group] = [g for g in browser.find_elements(By.CSS_SELECTOR, ".copy-group") if path in g.text]
    group.find_element(By.CSS_SELECTOR, button).click()
    status = group.find_element(By.CSS_SELECTOR, ".decide-status")
    wait.until(lambda _: status.text)
    return status.text


def _all_pictures_loaded(browser) -> bool:
    return browser.execute_script(
        "return [...document.images].every((image) => image.complete && image.naturalWidth > 0)"
    )


def test_resolve_remove_trash_and_undo_on_the_duplicates_page(decisions_server, browser):
    base, photos = decisions_server
    wait = page_wait(browser, 30)
    browser.get(base + "/duplicates")
    wait.until(lambda _: _all_pictures_loaded(browser))
    browser.find_element("id", "admin-token").send_keys("browser-secret-token")
    assert _click_in_group(
        browser, wait, "img0003-copy.png", ".decide-group[data-decision='keep_all']"
    ).startswith("decided (keep_all")
    assert _click_in_group(browser, wait, "img0005-copy.png", ".decide-group[data-decision='trash_others']")
    assert _click_in_group(browser, wait, "img0007-copy.png", ".decide-group[data-decision='remove_others']")
    assert not (photos / "img0005-copy.png").exists() and (photos / "img0007-copy.png").exists()

    browser.get(base + "/duplicates")
    assert "img0003-copy.png" not in browser.page_source and "img0005-copy.png" not in browser.page_source
    browser.get(base + "/duplicates?state=resolved")
    wait.until(lambda _: _all_pictures_loaded(browser))
    assert "in the trash" in browser.page_source and "removed from the index" in browser.page_source
    browser.find_element("id", "admin-token").send_keys("browser-secret-token")
    assert _click_in_group(browser, wait, "img0005-copy.png", ".undo-decision") == "undone"
    assert _click_in_group(browser, wait, "img0003-copy.png", ".undo-decision") == "undone"
    assert (photos / "img0005-copy.png").is_file()  # back from the trash
    browser.get(base + "/duplicates")
    wait.until(lambda _: _all_pictures_loaded(browser))
    assert "img0003-copy.png" in browser.page_source  # open again
