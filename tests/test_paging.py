"""folder= and offset= page through the filtered ranking exact search gives, every result once: the
first 40 in the shortlist's order (search/shortlist.py), the rest in the embedding's."""

import numpy as np
import pytest

from helpers import quiet_build, upload, write_images
from imgsim.live import live
from imgsim.search import annoy_index, verification
from imgsim.serve import web
from imgsim.serve.web import results


@pytest.fixture
def two_folders(tmp_path, service_config):
    """The service over 30 photos in folders a/ (18) and b/ (12), searching exactly."""
    from imgsim.serve import app as app_module

    write_images(tmp_path / "photos" / "a", 18, seed=1)
    write_images(tmp_path / "photos" / "b", 12, seed=2)
    cfg = service_config.replace(search_k=0)
    quiet_build(tmp_path / "photos", cfg)
    application = app_module.create_app(cfg)
    yield application
    web.service_of(application).close()


def _exact_ranking(index: annoy_index.SearchIndex, query_id: int, folder: str) -> list[int]:
    vectors = index.stored_vectors()
    row = index.rows_by_id[query_id]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.argsort(-(unit @ unit[row]), kind="stable")
    return [index.items[r].id for r in order if r != row and index.items[r].path.startswith(folder + "/")]


def test_pages_of_a_folder_are_its_whole_ranking_in_order(two_folders):
    client = two_folders.test_client()
    index = web.service_of(two_folders).holder.get().index
    query = index.items[0].id  # in a/: its neighbours in b/ are asked for
    seen, offset = [], 0
    while offset is not None:
        body = client.get(f"/search?id={query}&folder=b&k=5&offset={offset}&format=json").get_json()
        assert all(hit["path"].startswith("b/") for hit in body["results"])
        seen += [hit["id"] for hit in body["results"]]
        offset = body["next_offset"]
    whole = client.get(f"/search?id={query}&folder=b&k=12&format=json").get_json()["results"]
    assert seen == [hit["id"] for hit in whole] and sorted(seen) == sorted(_exact_ranking(index, query, "b"))
    assert len(seen) == 12
    assert body["more"] is False and body["truncated"] is False


def test_an_upload_pages_the_same_way_and_both_folders_together_are_everything(two_folders, tmp_path):
    client = two_folders.test_client()
    photo = (tmp_path / "photos" / "a" / "img0004.png").read_bytes()
    first = upload(client, photo, query="?k=4&folder=a").get_json()
    second = upload(client, photo, query="?k=4&folder=a&offset=4").get_json()
    assert first["results"][0]["path"] == "a/img0004.png" and first["next_offset"] == 4
    both = [h["id"] for h in first["results"] + second["results"]]
    assert len(set(both)) == 8 and all(
        h["path"].startswith("a/") for h in first["results"] + second["results"]
    )
    everything = upload(client, photo, query="?k=30&folder=a&folder=b").get_json()
    assert len(everything["results"]) == 30 and everything["more"] is False


def test_a_filter_that_runs_out_of_candidates_says_so(two_folders, monkeypatch):
    monkeypatch.setattr(live, "MAX_CANDIDATES", 6)
    monkeypatch.setattr(verification, "RERANK", 10)  # the first page's candidates: fewer than the items
    index = web.service_of(two_folders).holder.get().index
    body = (
        two_folders.test_client().get(f"/search?id={index.items[0].id}&folder=b&k=10&format=json").get_json()
    )
    assert body["truncated"] is True and len(body["results"]) < 10


@pytest.mark.parametrize(
    "query", ["offset=-1", "offset=x", "offset=991", "offset=901&k=100", "folder=../etc"]
)
def test_bad_paging_is_refused(two_folders, query):
    reply = two_folders.test_client().get(f"/search?id=1&{query}&format=json")
    assert reply.status_code == 400 and reply.get_json()["code"] in ("bad_offset", "bad_folder")


def test_the_page_offers_the_folders_and_more_results(two_folders):
    client = two_folders.test_client()
    home = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'id="folder-select"' in home and '<option value="a"' in home and '<option value="b"' in home
    page = client.get("/search?id=1&k=5", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'id="more-results"' in page and "offset=5" in page


def test_results_are_served_to_the_thousandth_and_no_further(two_folders):
    """A page past the 1,000th result would ask every segment for that many neighbours at a depth
    that grows to a scan of the whole collection: it is refused, and the last page links no further."""
    client = two_folders.test_client()
    last = client.get("/search?id=1&k=10&offset=990&format=json")
    assert last.status_code == 200 and last.get_json()["next_offset"] is None
    beyond = client.get("/search?id=1&k=10&offset=991&format=json").get_json()
    assert beyond["code"] == "bad_offset" and "1,000th" in beyond["error"]
    assert results.next_offset(980, 10, more=True) == 990 and results.next_offset(990, 10, more=True) is None


def test_pages_within_the_shortlist_are_cut_from_one_order(two_folders):
    """The first 40 are ordered with the shortlist's augmentation (search/shortlist.py): every page
    among them is cut from that order, so that no result shows twice and none is skipped."""
    client = two_folders.test_client()
    index = web.service_of(two_folders).holder.get().index
    for query in [item.id for item in index.items[:6]]:
        whole = [h["id"] for h in client.get(f"/search?id={query}&k=29&format=json").get_json()["results"]]
        pages = []
        for offset in range(0, 29, 4):
            body = client.get(f"/search?id={query}&k=4&offset={offset}&format=json").get_json()
            pages += [h["id"] for h in body["results"]]
        assert pages[:29] == whole, query
