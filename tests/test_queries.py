"""A region of an image, several images at once, images to avoid: each a query of its own."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers import quiet_build, write_images
from imgsim.index import queries
from imgsim.serve import web


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _collage(paths) -> Image.Image:
    """Four 48x48 photos as the quadrants of one 96x96 picture."""
    collage = Image.new("RGB", (96, 96))
    for n, path in enumerate(paths):
        collage.paste(Image.open(path).convert("RGB"), (48 * (n % 2), 48 * (n // 2)))
    return collage


@pytest.fixture
def collage_app(tmp_path, service_config):
    """The service over 12 photos and a collage of four of them (indexed too, as collage.png)."""
    from imgsim.serve import app as app_module

    photos = tmp_path / "photos"
    paths = write_images(photos, 12)
    _collage(paths[4:8]).save(photos / "collage.png")
    quiet_build(photos, service_config)
    application = app_module.create_app(service_config)
    yield application, paths
    web.service_of(application).close()


def test_a_box_on_one_quadrant_of_a_collage_finds_that_photo_first(collage_app):
    application, paths = collage_app
    client = application.test_client()
    collage = _png(_collage(paths[4:8]))
    for box, expected in (("0,0,0.5,0.5", "img0004.png"), ("0.5,0.5,0.5,0.5", "img0007.png")):
        reply = client.post(f"/search?k=3&box={box}", data=collage, content_type="image/png").get_json()
        assert reply["results"][0]["path"] == expected and reply["query"]["box"] == [
            float(v) for v in box.split(",")
        ]
    whole = client.post("/search?k=1", data=collage, content_type="image/png").get_json()
    assert whole["results"][0]["path"] == "collage.png"  # without a box: the collage itself


def test_a_box_on_an_indexed_image_searches_that_region_of_its_file(collage_app):
    application, _ = collage_app
    index = web.service_of(application).holder.get().index
    collage_id = next(item.id for item in index.items if item.path == "collage.png")
    reply = (
        application.test_client().get(f"/search?id={collage_id}&box=0.5,0,0.5,0.5&k=3&format=json").get_json()
    )
    assert reply["results"][0]["path"] == "img0005.png"
    assert collage_id not in [hit["id"] for hit in reply["results"]]


@pytest.mark.parametrize(
    "box",
    [
        "1,2,3",
        "a,b,c,d",
        "0.5,0.5,0.6,0.2",
        "-0.1,0,0.5,0.5",
        "0,0,0,0.5",
        "nan,0,1,1",
        "0,0,0.01,0.01",
        "\u0660,\u0660,\u0661,\u0661",  # Arabic-Indic digits: float() reads them as 0,0,1,1
        "0,0,1_0e-1,1",  # an underscore float() allows
    ],
)
def test_bad_boxes_are_refused(collage_app, box):
    """Only ASCII numbers: ``box=٠,٠,١,١`` was once read as 0,0,1,1 (hardening item 14)."""
    application, paths = collage_app
    client = application.test_client()
    reply = client.post(f"/search?box={box}", data=paths[0].read_bytes(), content_type="image/png")
    assert reply.status_code == 400 and reply.get_json()["code"] == "bad_box", reply.get_json()
    assert client.get(f"/search?id=1&box={box}&format=json").status_code == 400


@pytest.mark.parametrize("box", ["\u0660,\u0660,\u0661,\u0661", "0,0,1_0e-1,1", "0,0,\uff11,1", "0,0,inf,1"])
def test_a_box_is_four_ascii_numbers(box):
    with pytest.raises(queries.BadBox, match="four numbers"):
        queries.parse_box(box)


def test_a_combined_query_ranks_what_is_like_both_above_what_is_like_one():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(2, 64)).astype(np.float32)
    collection = np.stack([first, second, first + second, *rng.normal(size=(20, 64))]).astype(np.float32)
    query = queries.combine(np.stack([first, second]))
    cosines = collection @ query / np.linalg.norm(collection, axis=1) / np.linalg.norm(query)
    assert int(np.argmax(cosines)) == 2  # first + second: like both
    away = queries.combine(first[None, :], second[None, :])
    assert away @ second / np.linalg.norm(away) < first @ second / np.linalg.norm(first)


def test_several_images_and_ids_search_together_and_negatives_push_away(collage_app):
    application, paths = collage_app
    client = application.test_client()
    index = web.service_of(application).holder.get().index
    ids = {item.path: item.id for item in index.items}
    form = {
        "image": [(io.BytesIO(paths[0].read_bytes()), "a.png"), (io.BytesIO(paths[1].read_bytes()), "b.png")]
    }
    both = client.post("/search?k=13", data=form, content_type="multipart/form-data").get_json()
    assert {hit["path"] for hit in both["results"][:2]} == {"img0000.png", "img0001.png"}
    assert both["query"]["type"] == "combined" and both["query"]["images"] == 2

    plain = client.get(f"/search?id={ids['img0002.png']}&k=12&format=json").get_json()
    ranked = [hit["id"] for hit in plain["results"]]
    pushed = ranked[0]
    avoiding = client.get(f"/search?id={ids['img0002.png']}&negative_id={pushed}&k=12&format=json").get_json()
    assert pushed not in [hit["id"] for hit in avoiding["results"]]  # a negative is never an answer
    form = {
        "image": (io.BytesIO(paths[2].read_bytes()), "c.png"),
        "negative": (io.BytesIO(paths[3].read_bytes()), "d.png"),
    }
    away = client.post("/search?k=13", data=form, content_type="multipart/form-data").get_json()
    near = client.post("/search?k=13", data=paths[2].read_bytes(), content_type="image/png").get_json()

    def found(body: dict) -> dict:
        return next(h for h in body["results"] if h["path"] == "img0003.png")

    def rank(body: dict) -> int:
        return body["results"].index(found(body))

    assert found(away)["score"] < found(near)["score"] and rank(away) >= rank(near)  # never closer


def test_a_box_with_several_images_and_an_empty_combined_query_are_refused(collage_app):
    application, paths = collage_app
    client = application.test_client()
    form = {
        "image": [(io.BytesIO(paths[0].read_bytes()), "a.png"), (io.BytesIO(paths[1].read_bytes()), "b.png")]
    }
    reply = client.post("/search?box=0,0,0.5,0.5", data=form, content_type="multipart/form-data")
    assert reply.status_code == 400 and reply.get_json()["code"] == "bad_box"
    only_negative = {"negative": (io.BytesIO(paths[0].read_bytes()), "a.png")}
    reply = client.post("/search", data=only_negative, content_type="multipart/form-data")
    assert reply.status_code == 400 and reply.get_json()["code"] == "no_image"
    assert client.get("/search?id=1&id=x&format=json").status_code == 400


def test_the_images_of_one_query_share_one_pixel_budget(collage_app):
    """Each under the limit, together over it: refused before any is decoded (twenty 8000 x 8000
    PNGs of a few KB each held a worker for 12 s)."""
    application, _ = collage_app
    limit = web.service_of(application).cfg.max_image_pixels
    side = int((limit / 2) ** 0.5)  # each one half the limit: three are over it
    flat = _png(Image.new("RGB", (side, side), (90, 120, 40)))
    form = {"image": [(io.BytesIO(flat), f"{n}.png") for n in range(3)]}
    reply = application.test_client().post("/search", data=form, content_type="multipart/form-data")
    assert reply.status_code == 413 and reply.get_json()["code"] == "too_many_pixels"
    two = {"image": [(io.BytesIO(flat), f"{n}.png") for n in range(2)]}
    assert (
        application.test_client().post("/search", data=two, content_type="multipart/form-data").status_code
        == 200
    )


def test_a_combined_query_holds_one_decoded_image_at_a_time(collage_app, monkeypatch):
    """Every image of a combined query stayed decoded until the search ended: twenty 3.2-megapixel
    uploads held 192 MB a request, four requests a worker (hardening item 4)."""
    import weakref

    from imgsim.serve.searching import Searching

    application, paths = collage_app
    alive, most = set(), [0]
    real_decode = Searching.decode

    def counted_decode(self, data):
        image = real_decode(self, data)
        alive.add(id(image))
        most[0] = max(most[0], len(alive))
        weakref.finalize(image, alive.discard, id(image))
        return image

    monkeypatch.setattr(Searching, "decode", counted_decode)
    form = {"image": [(io.BytesIO(path.read_bytes()), path.name) for path in paths[:5]]}
    form["negative"] = [(io.BytesIO(paths[5].read_bytes()), paths[5].name)]
    reply = application.test_client().post("/search?k=3", data=form, content_type="multipart/form-data")
    assert reply.status_code == 200 and reply.get_json()["query"]["images"] == 5
    assert most[0] <= 2, f"{most[0]} decoded images held at once"
