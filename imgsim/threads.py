"""Work done in threads ahead of where it is used, in order: decoding pictures while the network
runs on those before them (OpenCV, PIL and the network release the GIL)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(
    items: list[T], work: Callable[[T], R], workers: int, ahead: int
) -> Iterator[tuple[T, Future[R]]]:
    """Run ``work`` on items in threads, at most ``ahead`` in flight, yielding in input order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        source = iter(items)
        pending = deque((item, pool.submit(work, item)) for item in itertools.islice(source, ahead))
        while pending:
            item, future = pending.popleft()
            for nxt in itertools.islice(source, 1):
                pending.append((nxt, pool.submit(work, nxt)))
            yield item, future
