"""One passage of an index, as a search returns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Passage:
    """A passage found by a search.

    ``passage_id`` is stable for the same governed text from the same file (a short content
    hash); ``source`` is the file relative to the project (as the index recorded it) with
    ``#L12-30`` (lines) or ``#page=3`` (PDF page) where known; ``text`` is the governed
    (redacted) passage; ``score`` ranks it (higher is better; BM25, or fused ranks for
    hybrid search).
    """

    passage_id: str
    text: str
    source: str
    score: float

    def reference(self) -> dict[str, Any]:
        """The passage as a response lists it: id, source and score, no text."""
        return {"passage_id": self.passage_id, "source": self.source, "score": round(self.score, 6)}
