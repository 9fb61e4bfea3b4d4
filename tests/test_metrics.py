"""GET /metrics: Prometheus' text format, with counters that move with the requests."""

from prometheus_client.parser import text_string_to_metric_families

from helpers import png


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, parsed by Prometheus' own parser."""
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_and_status_and_time_each_stage(client):
    before = scrape(client)
    assert client.post("/search?k=2", data=png(), content_type="image/png").status_code == 200
    assert client.post("/search", data=b"no image", content_type="image/png").status_code == 400
    after = scrape(client)
    searched = {"route": "/search", "method": "POST", "status": "200"}
    refused = {**searched, "status": "400"}
    requests = "imgsim_requests_total"
    for labels in (searched, refused):
        assert value(after, requests, **labels) == value(before, requests, **labels) + 1
    for stage in ("decode", "embed", "search"):
        count = "imgsim_stage_seconds_count"
        assert value(after, count, stage=stage) > value(before, count, stage=stage)
    passes, queries = "imgsim_query_batch_images_count", "imgsim_query_batch_images_sum"
    assert value(after, passes) == value(before, passes) + 1  # one query alone: one pass of one
    assert value(after, queries) == value(before, queries) + 1
    assert value(after, "imgsim_index_items") == 12
    assert value(after, "imgsim_live_delta") == 0
    info = [labels for (name, labels), v in after.items() if name == "imgsim_index_info" and v == 1]
    assert len(info) == 1 and dict(info[0])["model"] == "tiny"


def test_made_up_methods_do_not_add_series(client):
    for n in range(50):
        client.open("/search", method=f"BREW{n}")
    methods = {
        dict(labels).get("method") for (name, labels) in scrape(client) if name == "imgsim_requests_total"
    }
    known = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}
    assert methods <= known | {"other"} and "other" in methods  # earlier tests of the run count too
