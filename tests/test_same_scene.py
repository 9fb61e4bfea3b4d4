"""The same scene: another photo of the query's place or thing (another viewpoint, another moment)
is verified by local features under a looser geometry than a copy's, comes right after the copies
and says so (`"match": "same_scene"`, with its `verified` region); photos that only look alike do
not. Photos of INRIA Holidays (../shared/datasets/holidays_a), each group one scene."""

import io
import itertools
import shutil

import pytest

from helpers import BROWSER, HOLIDAYS, JSON, quiet_build
from imgsim import config
from imgsim.images import geometry, imaging, same_scene
from imgsim.measure import hard_copies

pytestmark = pytest.mark.slow  # the shared model over Holidays photos

requires_holidays = pytest.mark.skipif(
    not (config.SHARED_MODEL.is_file() and HOLIDAYS.is_dir()),
    reason=f"needs the shared model and holidays_a in {config.SHARED_DIR} (absent here)",
)
SCENE = ("100900.jpg", "100901.jpg", "100902.jpg")  # one building from three viewpoints (the second
# agrees with the first on too few points to be labelled)
SHOTS = ("101500.jpg", "101502.jpg")  # two shots framed apart: one picture by a copy's rules
# the query's nearest photos by the embedding that show other scenes, and more of each
OTHERS = ("103203.jpg", "103304.jpg", "100800.jpg", "100801.jpg", "109301.jpg", "101300.jpg")
OTHERS += ("101501.jpg", "101503.jpg", "111000.jpg", "111001.jpg", "105700.jpg", "105701.jpg")
FLOWERS = ("tulip/3510294699_bc4c72cb7d_n.jpg", "daisy/34293312980_5f6c492c52_n.jpg")
FLOWERS += ("daisy/4727955343_0bb23ac4ae.jpg", "rose/172311368_49412f881b.jpg")


def _features(name: str) -> geometry.Features:
    return geometry.features(imaging.open_rgb(HOLIDAYS / name, min_side=geometry.ANALYSED_SIDE))


@requires_holidays
def test_two_views_of_one_building_are_the_same_scene_but_not_one_picture():
    query, other_view = _features("100900.jpg"), _features("100902.jpg")
    assert geometry.verify(query, other_view) is None  # no copy: the camera moved
    match = same_scene.match(query, other_view)
    assert match is not None and match.inliers >= same_scene.MIN_INLIERS
    assert len(match.b_in_a) >= 3 and len(match.a_in_b) >= 3  # where each lies in the other


@requires_holidays
def test_the_nearest_photos_of_other_scenes_are_not_the_same_scene():
    query = _features("100900.jpg")
    for name in OTHERS[:5]:  # its nearest by the embedding, beyond its own scene
        assert same_scene.match(query, _features(name)) is None, name


@requires_holidays
@pytest.mark.parametrize("kind", ["screenshot", "caption", "watermark"])
def test_what_photos_share_only_around_them_is_not_the_same_scene(kind):
    """Regression: two screenshots of different photos in one viewer's window matched on its bars
    and buttons under an affine transform (40-60 agreeing points) and were labelled same_scene."""
    frame = hard_copies.KINDS[kind]
    pictures = [frame(imaging.open_rgb(config.SHARED_FLOWERS / name)) for name in FLOWERS]
    for one, other in itertools.permutations(pictures, 2):
        query = geometry.features(one, count=300, hashed=False)
        assert same_scene.match(query, geometry.features(other)) is None, kind


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> config.Config:
    """An index of the scene, the shots and the other photos, with the shared model."""
    if not (config.SHARED_MODEL.is_file() and HOLIDAYS.is_dir()):
        pytest.skip("needs the shared model and holidays_a")
    root = tmp_path_factory.mktemp("scenes")
    for name in SCENE + SHOTS + OTHERS:
        shutil.copy(HOLIDAYS / name, root / name)
    cfg = config.Config(index_dir=root.parent / "scenes-index", model=str(config.SHARED_MODEL), trees=20)
    quiet_build(root, cfg)
    return cfg


@pytest.fixture(scope="module")
def client(built):
    """The service over that index."""
    from imgsim.serve import app as app_module

    return app_module.create_app(built).test_client()


def _results(client, name: str, k: int = 8) -> list[dict]:
    data = (HOLIDAYS / name).read_bytes()
    reply = client.post(f"/search?k={k}", data=data, content_type="image/jpeg", headers=JSON)
    assert reply.status_code == 200
    return reply.get_json()["results"]


@requires_holidays
def test_an_upload_finds_its_other_view_after_its_own_file_labelled_same_scene(client):
    results = _results(client, "100900.jpg")
    labels = [(r["path"], r["match"]) for r in results]
    assert labels[:2] == [("100900.jpg", "duplicate"), ("100902.jpg", "same_scene")], labels
    assert all(match != "same_scene" for path, match in labels if path in OTHERS), labels
    for result in results[1:2]:  # its region, placed in the query and the query in it
        assert len(result["verified"]["region_in_query"]) >= 3
        assert len(result["verified"]["query_in_region"]) >= 3


@requires_holidays
def test_two_shots_framed_apart_are_the_same_scene_not_a_duplicate(client):
    """They verify as one picture (39 matches on one similarity, neither holding 95 % of the
    other): duplicate groups have called such pairs similar shots, a search called them
    `duplicate`."""
    shot = next(r for r in _results(client, "101500.jpg") if r["path"] == "101502.jpg")
    assert shot["match"] == "same_scene" and shot["verified"] is not None


@requires_holidays
def test_the_results_page_says_same_scene_and_outlines_what_both_show(client):
    form = {"image": (io.BytesIO((HOLIDAYS / "100900.jpg").read_bytes()), "building.jpg")}
    page = client.post("/search", data=form, headers=BROWSER, content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "match-same_scene" in html
    assert html.count('class="verified-region scene-region"') == 1 and "the same scene" in html


@requires_holidays
def test_the_command_line_says_same_scene_as_the_service_does(built, monkeypatch, capsys):
    import json

    from imgsim import cli

    monkeypatch.setenv("IMGSIM_INDEX_DIR", str(built.index_dir))
    monkeypatch.setenv("IMGSIM_MODEL", built.model)
    query = str(HOLIDAYS / "100900.jpg")
    assert cli.main(["search", query, "--k", "4", "--json"]) == 0
    [answer] = json.loads(capsys.readouterr().out)
    other_view = next(r for r in answer["results"] if r["path"] == "100902.jpg")
    assert other_view["match"] == "same_scene" and len(other_view["verified"]["region_in_query"]) >= 3
    assert cli.main(["search", query, "--k", "4"]) == 0
    assert any("same_scene" in line and "100902.jpg" in line for line in capsys.readouterr().out.splitlines())
