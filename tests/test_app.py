"""The web service through Flask's test client: pages, the JSON API, every error, hot swaps."""

import io
import json
import threading

import pytest
from PIL import Image

from helpers import BROWSER, JSON, png, quiet_build, upload, write_images
from imgsim.index import store
from imgsim.serve import app as app_module


def test_upload_page_offers_picker_drop_and_paste(client):
    page = client.get("/").get_data(as_text=True)
    assert 'type="file" name="image"' in page and "Searching 12 images" in page
    assert "/static/upload.js" in page and "http" not in page.split("<body>")[1].split("</footer>")[0]
    assert "paste" in client.get("/static/upload.js").get_data(as_text=True)


def test_json_search_returns_the_documented_shape(client, photos):
    reply = upload(client, (photos / "img0004.png").read_bytes(), query="?k=3")
    assert reply.status_code == 200
    body = reply.get_json()
    labels = {"min_score", "matches", "nothing_similar"}  # what the results' match labels mean
    paging = {"offset", "folders", "more", "truncated", "next_offset"}
    assert set(body) == {"query", "k", "results", "index", "took_ms"} | labels | paging
    assert body["k"] == 3 and len(body["results"]) == 3
    first = body["results"][0]
    shown = {"id", "path", "url", "thumbnail", "distance", "score", "match", "likeness", "verified"}
    assert set(first) == shown
    assert first["path"] == "img0004.png" and first["distance"] < 1e-3 and first["score"] > 0.99
    assert first["match"] == "duplicate" and body["nothing_similar"] is False
    assert first["url"] == f"/images/{first['id']}"
    assert body["index"]["items"] == 12 and body["index"]["model"] == "tiny"
    assert body["query"] == {"type": "upload", "filename": "photo.png", "width": 48, "height": 48}


def test_raw_image_body_and_k_as_form_field(client, photos):
    raw = client.post("/search?k=2", data=(photos / "img0001.png").read_bytes(), content_type="image/png")
    assert raw.status_code == 200 and raw.is_json and len(raw.get_json()["results"]) == 2
    form = upload(client, png(), k="5")
    assert len(form.get_json()["results"]) == 5


def test_browser_form_gets_the_results_page(client, photos):
    page = upload(client, (photos / "img0002.png").read_bytes(), headers=BROWSER, k="4")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert html.count('class="result"') == 4
    assert 'src="data:image/jpeg;base64,' in html  # the query shown back, never stored
    assert "from 12 images" in html
    assert "/search?id=" in html and 'class="match match-' in html and 'title="distance ' in html
    assert 'id="match-legend"' in html


def test_search_by_id_leaves_the_image_itself_out(client):
    body = client.get("/search?id=3&k=4&format=json").get_json()
    assert body["query"]["id"] == 3 and len(body["results"]) == 4
    assert 3 not in [hit["id"] for hit in body["results"]]
    html = client.get("/search?id=3", headers=BROWSER).get_data(as_text=True)
    assert html.count('class="result"') == 10


@pytest.mark.parametrize(
    ("send", "status", "code"),
    [
        (lambda c: c.post("/search", data=b"", content_type="image/png"), 400, "empty_body"),
        (lambda c: upload(c, b"GIF89a but not really"), 400, "not_an_image"),
        (lambda c: upload(c, png((300, 300))[:300]), 400, "not_an_image"),  # truncated
        (lambda c: upload(c, png((1100, 1000))), 413, "too_many_pixels"),
        (lambda c: upload(c, b"x" * 300_000), 413, "too_large"),
        (lambda c: upload(c, png(), query="?k=0"), 400, "bad_k"),
        (lambda c: upload(c, png(), query="?k=101"), 400, "bad_k"),
        (lambda c: upload(c, png(), query="?k=ten"), 400, "bad_k"),
        (
            lambda c: c.post("/search", data={"file": (io.BytesIO(png()), "a.png")}, headers=JSON),
            400,
            "no_image",
        ),
        (lambda c: c.get("/search?id=999"), 404, "unknown_id"),
        (lambda c: c.get("/search?id=../../etc/passwd"), 400, "bad_id"),
        (lambda c: c.get("/search?id=²"), 400, "bad_id"),  # a digit to str.isdigit, not to int()
        (lambda c: c.get("/images/999"), 404, "unknown_id"),
        (lambda c: c.get("/thumbs/999"), 404, "unknown_id"),
        (lambda c: c.get("/images/..%2F..%2Fetc%2Fpasswd"), 404, "not_found"),
        (lambda c: c.delete("/search"), 405, "method_not_allowed"),
    ],
)
def test_bad_requests_get_a_short_json_error(client, send, status, code):
    reply = send(client)
    assert reply.status_code == status
    assert reply.get_json()["code"] == code and reply.get_json()["error"]
    assert "Traceback" not in reply.get_data(as_text=True)


def test_browser_gets_a_friendly_error_page(client):
    reply = upload(client, b"plain text, not a photo", headers=BROWSER)
    html = reply.get_data(as_text=True)
    assert reply.status_code == 400 and reply.mimetype == "text/html"
    assert "cannot read the upload as an image" in html and "Try another image" in html


def test_images_and_thumbnails_are_served_by_id(client, photos):
    body = upload(client, (photos / "img0006.png").read_bytes()).get_json()
    hit = body["results"][0]
    original = client.get(hit["url"])
    assert original.status_code == 200 and original.data == (photos / "img0006.png").read_bytes()
    thumb = client.get(hit["thumbnail"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.data)).size == (48, 48)  # small images are not enlarged


def test_an_unreadable_file_is_not_read_again_for_every_thumbnail_request(client, photos, monkeypatch):
    """A corrupt collection file was read whole again by every /thumbs request (hardening item 5)."""
    from imgsim import durable

    (photos / "img0004.png").write_bytes(b"no longer a picture")
    opened: list[str] = []
    real_open = durable.open_inside

    def counted(root, path):
        opened.append(str(path))
        return real_open(root, path)

    monkeypatch.setattr(durable, "open_inside", counted)
    answers = [client.get("/thumbs/4") for _ in range(5)]
    assert {a.status_code for a in answers} == {404} and answers[-1].get_json()["code"] == "file_missing"
    assert len(opened) == 1


def test_a_rebuild_prunes_the_thumbnails_of_what_it_no_longer_holds(client, photos, service_config):
    """Thumbnails of deleted or changed files were kept for good (hardening item 5)."""
    from imgsim.index import store

    for item_id in (2, 3):
        assert client.get(f"/thumbs/{item_id}").status_code == 200
    thumbs = sorted((service_config.index_dir / store.THUMBS_DIR).glob("*.jpg"))
    assert len(thumbs) == 2
    (photos / "img0002.png").unlink()
    quiet_build(photos, service_config)
    left = sorted((service_config.index_dir / store.THUMBS_DIR).glob("*.jpg"))
    assert len(left) == 1 and left[0] in thumbs


def test_health_stats_and_openapi(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    client.get("/search?id=1&format=json")
    stats = client.get("/stats").get_json()
    assert stats["requests"]["search_id"] == 1 and stats["index"]["items"] == 12
    spec = client.get("/openapi.json").get_json()
    assert {"/search", "/images/{id}", "/thumbs/{id}", "/healthz", "/stats"} <= set(spec["paths"])


def test_without_an_index_the_service_says_so(tmp_path, tiny_config):
    client = app_module.create_app(tiny_config.replace(index_dir=tmp_path / "nothing")).test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and "img2vec.py" in health.get_json()["reason"]
    reply = upload(client, png())
    assert reply.status_code == 409 and reply.get_json()["code"] == "no_index"
    assert "No index is loaded yet" in client.get("/").get_data(as_text=True)


def test_hot_swap_under_concurrent_requests(app, client, photos, service_config):
    cfg = service_config
    flask_app = app
    old_version = store.current_version(cfg.index_dir).name
    upload = (photos / "img0000.png").read_bytes()
    replies, stop = [], threading.Event()

    def hammer():
        own = flask_app.test_client()
        while not stop.is_set():
            replies.append(own.get("/search?id=0&k=5&format=json"))
            replies.append(own.post("/search?k=5", data=upload, content_type="image/png"))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        write_images(photos, 6, seed=11, prefix="added")
        new_version = quiet_build(photos, cfg).version.name
        deadline = threading.Event()
        for _ in range(100):  # every worker follows within reload_interval
            if client.get("/healthz").get_json()["version"] == new_version:
                break
            deadline.wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert new_version != old_version
    assert replies and all(reply.status_code == 200 for reply in replies)
    catalogues = {
        name: {item.id for item in store.read_items(cfg.index_dir / "versions" / name)}
        for name in (old_version, new_version)
    }
    for reply in replies:  # each answer comes wholly from one version
        body = reply.get_json()
        assert {hit["id"] for hit in body["results"]} <= catalogues[body["index"]["version"]]
    assert client.get("/search?id=0&format=json").get_json()["index"]["items"] == 18
    assert json.loads(client.get("/healthz").data)["version"] == new_version


def test_every_answer_carries_the_security_headers(client):
    for path in ("/", "/duplicates?format=html", "/healthz", "/images/9999", "/static/upload.js"):
        reply = client.get(path)
        assert reply.headers["X-Frame-Options"] == "DENY", path
        assert reply.headers["X-Content-Type-Options"] == "nosniff", path
        assert reply.headers["Referrer-Policy"] == "same-origin", path
        policy = reply.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path


def test_the_upload_page_shows_the_reason_of_a_refusal():
    """Errors answer {"error", "code"}: the page read body.message and showed only "failed (401)"."""
    from helpers import ROOT

    script = (ROOT / "static" / "upload.js").read_text()
    assert "body.error" in script and "body.message" not in script


def test_stats_and_health_show_paths_and_errors_only_to_the_admin(client, admin, tmp_path, tiny_config):
    from helpers import ADMIN

    public = client.get("/stats").get_data(as_text=True)
    assert "/" + str(tmp_path).strip("/") not in public and "worker_pid" not in public
    private = client.get("/stats", headers=ADMIN).get_json()
    assert private["index"]["collection_root"].startswith(str(tmp_path)) and private["worker_pid"] > 0
    empty = app_module.create_app(tiny_config.replace(index_dir=tmp_path / "nothing")).test_client()
    reason = empty.get("/healthz").get_json()["reason"]
    assert str(tmp_path) not in reason and "img2vec.py" in reason


def test_an_address_that_keeps_guessing_the_token_is_refused_but_the_admin_never_is(client):
    """/stats answers more to the token than without it: unlimited wrong tokens made it an oracle
    for guessing the token (hardening item 12)."""
    from helpers import ADMIN
    from imgsim.serve.web import guesses

    wrong = {"Authorization": "Bearer a-wrong-guess-of-the-token"}
    answers = [client.get("/stats", headers=wrong) for _ in range(guesses.GUESSES + 2)]
    assert [a.status_code for a in answers] == [200] * guesses.GUESSES + [429, 429]
    assert answers[-1].get_json()["code"] == "too_many_guesses"
    assert "worker_pid" not in answers[0].get_json()  # a wrong token sees what anyone sees
    assert client.delete("/images/1", headers=wrong).status_code == 429  # changes too, while it lasts
    assert client.get("/stats", headers=ADMIN).get_json()["worker_pid"] > 0  # the right one, always
    assert client.get("/stats").status_code == 200  # asking without a token is not guessing


def test_every_refusal_the_service_raises_has_its_status_in_the_web_layer():
    """The parts raise codes (serve/refusals.py); web/errors.STATUS alone says which HTTP status
    each is, so no part below the web layer holds an HTTP status number."""
    import ast

    from helpers import ROOT
    from imgsim.serve.web import errors

    raised = set()
    for path in (ROOT / "imgsim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ServiceError" and node.args:
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path}: {ast.dump(first)}"
                )
                raised.add(first.value)
    assert raised and raised <= set(errors.STATUS), raised - set(errors.STATUS)
    assert all(400 <= status < 600 for status in errors.STATUS.values())
