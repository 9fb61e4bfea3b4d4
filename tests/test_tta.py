"""Searching with the query turned: a turned photo finds its original, other queries keep theirs."""

from dataclasses import dataclass

from PIL import Image

from imgsim.models import tta


@dataclass
class Hit:
    id: int
    score: float


def test_rotations_give_the_query_and_its_three_turns():
    image = Image.new("RGB", (30, 20))
    turned = tta.variants(image, "rotations")
    assert turned[0] is image and [v.size for v in turned] == [(30, 20), (20, 30), (30, 20), (20, 30)]
    assert tta.variants(image, "none") == [image]


def test_a_turn_that_finds_a_near_copy_replaces_the_plain_answer():
    plain, copy = [Hit(1, 0.6)], [Hit(7, 0.95)]
    assert tta.best_orientation([plain, [Hit(2, 0.5)], copy, []]) == copy


def test_the_plain_answer_stays_unless_a_turn_is_sure_and_better():
    plain = [Hit(1, 0.9)]
    assert tta.best_orientation([plain, [Hit(2, 0.7)]]) == plain  # turned, not a near copy
    assert tta.best_orientation([plain, [Hit(2, 0.85)]]) == plain  # a near copy, but not better
    assert tta.best_orientation([plain]) == plain
    assert tta.best_orientation([[], [Hit(3, tta.SURE)]]) == [Hit(3, tta.SURE)]


def test_the_service_finds_the_original_of_a_photo_sent_sideways(photos, service_config):
    import io

    from helpers import quiet_build, search_hits
    from imgsim.serve import app as app_module
    from imgsim.serve import web

    quiet_build(photos, service_config)
    application = app_module.create_app(service_config.replace(tta="rotations"))
    try:
        sideways = Image.open(photos / "img0003.png").transpose(Image.Transpose.ROTATE_90)
        buffer = io.BytesIO()
        sideways.save(buffer, "PNG")
        hits = search_hits(application.test_client(), buffer.getvalue(), k=3)
        assert hits[0]["path"] == "img0003.png" and hits[0]["score"] > 0.99
        stats = application.test_client().get("/stats").get_json()
        assert stats["index"]["search_k"] == stats["index"]["recall"]["search_k"]
    finally:
        web.service_of(application).close()
