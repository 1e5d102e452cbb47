"""What every scanner returns and how overlapping findings become one.

A :class:`Finding` holds a type and a span but never the matched value, so nothing
downstream can leak it by accident. The scanners themselves live in one module per family
(contact, financial, identity, network, secrets, addresses, ner); ``scanners`` assembles them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Finding:
    """One piece of PII in a text: its type and ``text[start:end]`` (never the value)."""

    type: str
    start: int
    end: int
    scanner: str


@runtime_checkable
class Scanner(Protocol):
    """What a scanner provides; plugins return these from ``polyadapt_scanners``."""

    #: A unique name, recorded on each finding.
    name: str
    #: The finding types this scanner can report (``"email"``, ...).
    types: tuple[str, ...]

    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text``; overlapping ones are fine (they are resolved later)."""


#: Tie-break order for overlapping findings of equal length; unknown types come after.
TYPE_PRIORITY = (
    "secret",
    "payment_card",
    "iban",
    "national_id",
    "passport",
    "email",
    "ip_address",
    "date_of_birth",
    "phone",
    "address",
    "person",
)


_RANK = {name: i for i, name in enumerate(TYPE_PRIORITY)}


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep one finding per overlapping group: longest span first, then by type priority.

    The result is sorted by position. Deterministic for the same input.
    """
    if len(findings) <= 1:  # nothing to resolve (the common case per scanner on most text)
        return [f for f in findings if f.end > f.start]
    rank = _RANK
    ordered = sorted(
        set(findings),
        key=lambda f: (-(f.end - f.start), rank.get(f.type, len(rank)), f.type, f.start, f.scanner),
    )
    kept: list[Finding] = []
    for finding in ordered:
        if finding.end <= finding.start:
            continue
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: (f.start, f.end))


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans, overlapping ones joined into one (for a detector whose rules overlap)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(set(spans)):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
