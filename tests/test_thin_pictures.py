"""Thin and tiny pictures are pictures: searched, added and indexed like any other.

A 4000 x 3 PNG once broke ORB's image pyramid (cv2.error in geometry.features): a search with it
answered 500, and once added it failed every later compaction and build. A picture too thin to
verify is simply not verified.
"""

from __future__ import annotations

import pytest
from PIL import Image

from helpers import JSON, png, quiet_build
from imgsim.images import geometry
from imgsim.serve import app as app_module
from imgsim.serve import web

THIN = [(4000, 3), (3, 4000), (20000, 2), (1, 65535), (1, 1)]


@pytest.mark.parametrize("size", THIN, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_thin_picture_has_no_keypoints_and_no_error(size):
    found = geometry.features(Image.new("RGB", size, (200, 30, 30)))
    assert len(found.points) == 0 and found.size == size


@pytest.mark.parametrize("size", THIN, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_thin_picture_is_searched_and_added(client, admin, size):
    searched = client.post("/search?k=3", data=png(size), content_type="image/png", headers=JSON)
    assert searched.status_code == 200, searched.get_json()
    assert len(searched.get_json()["results"]) == 3
    added = admin.add(png(size), name="thin.png")
    assert added.status_code == 201, added.get_json()


def test_thin_pictures_in_the_collection_are_indexed_by_a_build_and_a_compaction(
    photos, service_config, tmp_path
):
    for width, height in THIN[:2]:
        Image.new("RGB", (width, height), (20, 90, 200)).save(photos / f"thin_{width}x{height}.png")
    report = quiet_build(photos, service_config)
    assert report.items == 14 and not report.skipped
    flask_app = app_module.create_app(service_config.replace(compact_threshold=3, reload_interval=0.0))
    client = flask_app.test_client()
    try:
        from helpers import AdminActions

        for width, height in THIN[2:]:
            assert AdminActions(client).add(png((width, height)), name="thin.png").status_code == 201
        compactor = web.service_of(flask_app).compactor
        assert compactor.thread is not None
        compactor.thread.join(timeout=120)
        assert not compactor.failing
        health = client.get("/healthz").get_json()
        assert health["status"] == "ok" and "compaction" not in health
        assert health["items"] == 17
    finally:
        web.service_of(flask_app).close()
