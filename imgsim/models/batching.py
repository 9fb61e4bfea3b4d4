"""Concurrent queries in one worker share one forward pass.

A network embeds a batch of 8 images in far less than 8 times the time of one, so searches that
arrive together should go through it together. There is no timer: the first query to find the
network idle runs at once with whatever is waiting, so a query that arrives alone pays nothing;
queries that arrive while a pass runs wait for it to end, then go through together in the next
pass, at most ``max_batch`` at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class _Waiting:
    item: np.ndarray
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class Batcher:
    """Calls ``run`` on a stack of the items that callers of ``embed`` hand in concurrently."""

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 16,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.run = run
        self.max_batch = max(1, max_batch)
        self.on_batch = on_batch
        self._changed = threading.Condition()
        self._queue: list[_Waiting] = []
        self._running = False

    @property
    def waiting(self) -> int:
        """Queries waiting for the next pass."""
        with self._changed:
            return len(self._queue)

    def embed(self, item: np.ndarray) -> np.ndarray:
        """``run`` of one item, computed in a pass shared with the concurrent callers."""
        return self.embed_all([item])[0]

    def embed_all(self, items: list[np.ndarray]) -> np.ndarray:
        """``run`` of several items of one caller (a query's variants), in as few shared passes as
        ``max_batch`` allows."""
        mine = [_Waiting(item) for item in items]
        with self._changed:
            self._queue.extend(mine)
            while not all(waiting.done for waiting in mine):
                if self._running:
                    self._changed.wait()
                    continue
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self._running = True
                self._changed.release()
                try:
                    self._run(batch)
                finally:
                    self._changed.acquire()
                    for waiting in batch:
                        waiting.done = True
                    self._running = False
                    self._changed.notify_all()
        for waiting in mine:
            if waiting.error is not None:
                raise waiting.error
        return np.stack([waiting.result for waiting in mine if waiting.result is not None])

    def _run(self, batch: list[_Waiting]) -> None:
        """One pass for the batch; every caller in it gets its row, or the pass's error."""
        try:
            if self.on_batch is not None:
                self.on_batch(len(batch))
            results = self.run(np.stack([waiting.item for waiting in batch]))
            for waiting, result in zip(batch, results, strict=True):
                waiting.result = result
        except BaseException as error:  # every caller of the pass raises it, not just this one
            for waiting in batch:
                waiting.error = error
