"""How deep a query searches Annoy, as a type: no integer carries a meaning of its own.

Annoy's ``search_k`` counts the nodes a query inspects. imgsim also asks for three depths that are
not counts: the one its build tuned for each segment (index/recall.py), every vector (exact), and
Annoy's own trees x k (a copy's candidates, where a build wants speed over the last percent of
recall). Integers stay only where Annoy and the files take them: ``search_k`` in manifest.json and
segment.json (0 exact, -1 not tuned) and the ``--search-k`` setting (-1 the build's choice, 0 exact),
each turned into a Depth by ``from_search_k`` where it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EXACT_SEARCH_K = 0  # the search_k that a file or a setting writes for exact search
DEFAULT_SEARCH_K = -1  # a setting's "the build's depth", a file's "not tuned", Annoy's own trees x k


@dataclass(frozen=True, slots=True)
class Depth:
    """One of TUNED, EXACT, SHALLOW, or a count of nodes (``Depth.of(n)``)."""

    how: Literal["tuned", "exact", "shallow", "nodes"]
    nodes: int = 0

    @classmethod
    def of(cls, nodes: int) -> Depth:
        """Annoy's search_k ``nodes`` (a positive count)."""
        if nodes <= 0:
            raise ValueError(f"a search depth counts nodes: {nodes} is not a count")
        return cls("nodes", nodes)

    def search_k(self, tuned: int) -> int:
        """The search_k to give Annoy in a segment whose build tuned ``tuned``; EXACT_SEARCH_K
        means compare with every vector, DEFAULT_SEARCH_K Annoy's own trees x k."""
        if self.how == "tuned":
            return tuned
        if self.how == "exact":
            return EXACT_SEARCH_K
        if self.how == "shallow":
            return EXACT_SEARCH_K if tuned == EXACT_SEARCH_K else DEFAULT_SEARCH_K
        return self.nodes


TUNED = Depth("tuned")  # the depth the build measured for its recall target, segment by segment
EXACT = Depth("exact")  # every vector compared
SHALLOW = Depth("shallow")  # Annoy's own trees x k, exact where the build chose exact search


def from_search_k(search_k: int) -> Depth:
    """The depth a ``--search-k`` setting (or Annoy's own call) asks for: -1 the build's, 0 exact."""
    if search_k == DEFAULT_SEARCH_K:
        return TUNED
    if search_k == EXACT_SEARCH_K:
        return EXACT
    return Depth.of(search_k)
