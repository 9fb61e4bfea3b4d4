"""Concurrent queries share forward passes; a query alone runs at once."""

import threading
import time

import numpy as np
import pytest

from imgsim.models.batching import Batcher


class HeldNetwork:
    """Doubles its input and records the size of every pass; the first pass waits for ``release``."""

    def __init__(self):
        self.passes: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.passes.append(len(batch))
        self.started.set()
        assert self.release.wait(10)
        return batch * 2


def _while_a_pass_runs(batcher: Batcher, network: HeldNetwork, items: list[np.ndarray]) -> list:
    """Start one query, then ``items`` concurrently once it is in the network; their results."""
    first = threading.Thread(target=batcher.embed, args=(np.array([-1.0]),))
    first.start()
    assert network.started.wait(10)
    results: list[np.ndarray | None] = [None] * len(items)

    def call(n: int) -> None:
        results[n] = batcher.embed(items[n])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(items))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while batcher.waiting < len(items) and time.monotonic() < deadline:
        time.sleep(0.005)
    network.release.set()
    for thread in [first, *threads]:
        thread.join(timeout=10)
    return results


def test_a_query_alone_runs_at_once_in_a_pass_of_one():
    network = HeldNetwork()
    network.release.set()
    batcher = Batcher(network, max_batch=16)
    assert batcher.embed(np.array([1.0, 2.0])).tolist() == [2.0, 4.0]
    assert batcher.embed(np.array([3.0, 4.0])).tolist() == [6.0, 8.0]
    assert network.passes == [1, 1]


def test_queries_that_arrive_during_a_pass_share_the_next_one_and_each_gets_its_own_row():
    network = HeldNetwork()
    sizes = []
    batcher = Batcher(network, max_batch=16, on_batch=sizes.append)
    results = _while_a_pass_runs(batcher, network, [np.array([float(n)]) for n in range(10)])
    assert [r.tolist() for r in results] == [[2.0 * n] for n in range(10)]
    assert network.passes == sizes == [1, 10]


def test_a_pass_holds_at_most_max_batch_queries():
    network = HeldNetwork()
    batcher = Batcher(network, max_batch=4)
    results = _while_a_pass_runs(batcher, network, [np.array([float(n)]) for n in range(10)])
    assert [r.tolist() for r in results] == [[2.0 * n] for n in range(10)]
    assert network.passes == [1, 4, 4, 2]


def test_one_callers_variants_go_through_together_in_passes_of_at_most_max_batch():
    network = HeldNetwork()
    network.release.set()
    batcher = Batcher(network, max_batch=4)
    turned = batcher.embed_all([np.array([float(n)]) for n in range(4)])  # a query and its 3 turns
    assert turned.tolist() == [[0.0], [2.0], [4.0], [6.0]] and network.passes == [4]
    six = batcher.embed_all([np.array([float(n)]) for n in range(6)])
    assert six.tolist() == [[2.0 * n] for n in range(6)]
    assert network.passes == [4, 4, 2]


def test_a_failed_pass_fails_every_query_in_it_and_the_next_pass_runs():
    calls = []

    def flaky(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return batch + 1

    batcher = Batcher(flaky)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.embed(np.array([1.0]))
    assert batcher.embed(np.array([1.0])).tolist() == [2.0]


def test_concurrent_searches_in_the_service_get_the_answers_they_get_alone(app, photos):
    from imgsim.images import imaging
    from imgsim.serve import web

    svc = web.service_of(app)
    images = [imaging.open_rgb(photos / f"img{n:04d}.png") for n in range(8)]
    alone = [[hit.path for hit in svc.searching.search_image(image, 3).hits] for image in images]
    together: list = [None] * len(images)

    def search(n: int) -> None:
        together[n] = [hit.path for hit in svc.searching.search_image(images[n], 3).hits]

    threads = [threading.Thread(target=search, args=(n,)) for n in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert together == alone
    assert [paths[0] for paths in alone] == [f"img{n:04d}.png" for n in range(8)]
