"""Which of many fixed strings occur in a text, found in one pass (the scanners' cheap gates).

A scanner runs its expensive patterns only where a fixed string they need occurs (a token's
prefix, a street word, the name of a national number). With a hundred such strings, a
substring test per string costs more than the patterns it saves on most texts; an
Aho-Corasick automaton (pyahocorasick, C) finds all of them, overlapping ones included, in
one pass over the text. One-character strings are tested with ``in`` instead: the automaton
would report every occurrence of a common character.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

import ahocorasick

V = TypeVar("V")
_NONE = object()


class NeedleSet(Generic[V]):
    """Fixed strings, each with a value (the rules it opens), searched in one pass."""

    def __init__(self, needles: Iterable[tuple[str, V]]) -> None:
        """``needles``: ``(string, value)`` pairs; a string given twice keeps its last value."""
        self._short: dict[str, V] = {}
        self._automaton = ahocorasick.Automaton()
        for needle, value in needles:
            if not needle:
                raise ValueError("a needle must not be empty")
            if len(needle) == 1:
                self._short[needle] = value
            else:
                self._automaton.add_word(needle, (needle, value))
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    def values_in(self, haystack: str) -> Iterator[V]:
        """The value of each needle occurrence in ``haystack`` (a needle may repeat; a
        one-character needle is reported once)."""
        for needle, value in self._short.items():
            if needle in haystack:
                yield value
        if not self._empty:
            for _, (_, value) in self._automaton.iter(haystack):
                yield value

    def any_in(self, haystack: str) -> bool:
        """Whether any needle occurs in ``haystack``."""
        return next(self.values_in(haystack), _NONE) is not _NONE

    def occurrences(self, haystack: str) -> Iterator[tuple[int, str, V]]:
        """``(start, needle, value)`` for every occurrence of a needle in ``haystack``,
        overlapping ones included, in no particular order."""
        for needle, value in self._short.items():
            at = haystack.find(needle)
            while at >= 0:
                yield at, needle, value
                at = haystack.find(needle, at + 1)
        if not self._empty:
            for end, (needle, value) in self._automaton.iter(haystack):
                yield end - len(needle) + 1, needle, value

    def starts_in(self, haystack: str) -> list[int]:
        """The sorted offsets at which a needle starts in ``haystack``, each offset once."""
        return sorted({start for start, _, _ in self.occurrences(haystack)})
