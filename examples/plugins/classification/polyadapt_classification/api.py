"""What the ``/v1/classifications`` route hands the servable and gets back (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClassificationRequest:
    """One text to classify; ``adapter`` is None for the base model."""

    text: str
    adapter: str | None = None


@dataclass
class ClassificationResult:
    """The most likely class of one text, its probability and every class's probability."""

    label: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
