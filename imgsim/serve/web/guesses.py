"""Wrong admin tokens counted per address: past GUESSES in a WINDOW_S, that address is refused
(429, ``too_many_guesses``) until the window has passed, whatever it asks for.

/stats and /healthz answer more to the token than without it, so without a limit on wrong tokens
they were an oracle for guessing it. nginx limits guesses too (deploy/nginx.conf); this holds where
gunicorn is reached directly. The right token is never refused, from any address.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

GUESSES = 10  # wrong tokens per address and window, before the address is refused
WINDOW_S = 60.0
ADDRESSES = 10_000  # addresses remembered (the least recent forgotten first): bounded memory


class Guesses:
    """The wrong tokens of the last WINDOW_S, by address, in one worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.setdefault(address, deque())
        self._seen.move_to_end(address)
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        while len(self._seen) > ADDRESSES:
            self._seen.popitem(last=False)
        return times

    def wrong(self, address: str) -> None:
        """A wrong token from ``address``."""
        now = time.monotonic()
        with self._lock:
            self._recent(address, now).append(now)

    def refused(self, address: str) -> bool:
        """Whether ``address`` guessed too often in the last window."""
        with self._lock:
            return len(self._recent(address, time.monotonic())) >= GUESSES
