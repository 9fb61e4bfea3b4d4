"""The default index folder is relative (``rsc_files``): the service must serve it from the
working directory, as every user who follows the README runs it.

Flask's send_file reads a relative path against the package's folder, so every thumbnail and
image of a relative index once answered 500 while every test, on absolute temporary folders, passed.
"""

from __future__ import annotations

from helpers import JSON, quiet_build, write_images
from imgsim.serve import app as app_module
from imgsim.serve import web


def test_thumbnails_and_images_of_a_relative_index_folder_are_served(tmp_path, tiny_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "photos", 4)
    cfg = tiny_config.replace(index_dir=tiny_config.index_dir.relative_to(tmp_path))
    assert not cfg.index_dir.is_absolute()
    quiet_build("photos", cfg)
    flask_app = app_module.create_app(cfg)
    try:
        client = flask_app.test_client()
        first = client.get("/search?id=0&k=2", headers=JSON).get_json()["results"][0]
        thumbnail = client.get(first["thumbnail"])
        assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg"
        assert thumbnail.data[:2] == b"\xff\xd8"
        image = client.get(first["url"])
        assert image.status_code == 200 and image.data[:4] == b"\x89PNG"
    finally:
        web.service_of(flask_app).close()
