"""Facts about one text that several pattern scanners use, computed once per text.

:func:`scan_text` runs ten scanners over the same string; each used to lower-case it
itself. :func:`lowered` keeps the last text's lower-cased form (a one-entry cache keyed by
the string object, replaced atomically, so threads cannot mix two texts up), and
:func:`plain_case` says when a cheap substring test on that form is exact: a case-insensitive
regex (``(?i)passport``) matches ``text`` only where ``lowered(text)`` holds the lower-cased
word, unless the text has one of the four characters that Python's ``re`` matches to an
ASCII letter without ``str.lower`` folding them to it (dotted and dotless I, the Kelvin sign,
the long s).

:func:`number_runs` finds the runs of digits and separators once per text, and
:func:`run_matches` runs a number pattern (phone, card, SSN, IPv4) inside those runs only,
instead of each pattern trying its first ``\\d`` at every digit of the whole text.
"""

from __future__ import annotations

import re

__all__ = ["lowered", "plain_case", "first_at", "number_runs", "run_matches", "RUN_CHARS", "SHORTEST_RUN"]

#: Characters ``(?i)`` matches to an ASCII letter that ``str.lower`` does not turn into it
#: (found by testing every code point against every ASCII letter).
CASE_EXCEPTIONS = ("\u0130", "\u0131", "\u212a", "\u017f")

_last: tuple[str, str] = ("", "")


def lowered(text: str) -> str:
    """``text.lower()``, computed once for the text the scanners are looking at."""
    global _last
    last = _last
    if last[0] is text:
        return last[1]
    lower = text.lower()
    _last = (text, lower)
    return lower


def plain_case(text: str) -> bool:
    """True when a case-insensitive match of an ASCII word in ``text`` is a substring of
    :func:`lowered` (see the module docs), at the same offsets."""
    return text.isascii() or (not any(ch in text for ch in CASE_EXCEPTIONS) and len(lowered(text)) == len(text))


def first_at(haystack: str, needles: tuple[str, ...]) -> int:
    """The first offset of any of ``needles`` in ``haystack``; -1 when none occurs."""
    best = -1
    for needle in needles:
        at = haystack.find(needle, 0, best + len(needle) if best >= 0 else len(haystack))
        if at >= 0 and (best < 0 or at < best):
            best = at
    return best


#: The characters numbers are written with: digits (any ``\\d``) and these separators.
RUN_CHARS = " \t().-/+"
#: The shortest run :func:`number_runs` keeps (a NINO's digits, ``12 34 56``, fill 6).
SHORTEST_RUN = 6
#: From a run's first digit to its end, ``SHORTEST_RUN`` characters or more: a run that
#: opens with an earlier digit is the same run (the greedy class takes every separator and
#: digit), so each match is a maximal run of :data:`RUN_CHARS` from its first digit on.
_RUN = re.compile(rf"\d[\d \t().\-/+]{{{SHORTEST_RUN - 1},}}")

_last_runs: tuple[str, tuple[tuple[int, int], ...]] = ("", ())


def number_runs(text: str) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` of each maximal run of digits and :data:`RUN_CHARS` in ``text``, from
    its first digit to its end, at least :data:`SHORTEST_RUN` characters long; computed once
    for the text the scanners are looking at (a one-entry cache, as :func:`lowered`).

    A match made of those characters only, holding a digit at most ``lead`` characters
    after its start, lies in one run: it starts at most ``lead`` characters before the
    run's start and ends by the run's end (see :func:`run_matches`)."""
    global _last_runs
    last = _last_runs
    if last[0] is text:
        return last[1]
    runs = tuple([m.span() for m in _RUN.finditer(text)])  # a list comprehension beats a generator
    _last_runs = (text, runs)
    return runs


def run_matches(
    pattern: re.Pattern[str], text: str, shortest: int, lead: int = 0, needs: tuple[str, int] | None = None
) -> list[re.Match[str]]:
    """The matches of ``pattern.finditer(text)`` that lie in a :func:`number_runs` run of at
    least ``shortest`` characters (every match, when each one reaches ``shortest`` characters
    from its first digit on), found by searching those runs only.

    Exact for a ``pattern`` whose every match (1) is made of digits and :data:`RUN_CHARS`
    only, (2) holds a digit at most ``lead`` characters (0, 1 or 2) after its start,
    (3) is at least 3 characters long from that digit on, and (4) looks at most 2
    characters past its end (look-aheads, ``\\b``); look-behinds see the whole text. A run
    is searched from ``lead`` characters before it to 2 past it: no match can start in the
    run before (it would end at that run's end, within ``lead`` characters) or in those 2
    characters.

    ``needs``: ``(character, count)`` when every match holds that separator ``count`` times
    (an IPv4 address three dots): a match lies in its run, so a run with fewer is skipped."""
    found: list[re.Match[str]] = []
    search = pattern.search  # a search per match costs less than a finditer per run (most hold 0 or 1)
    for start, end in number_runs(text):
        if end - start >= shortest and (needs is None or text.count(needs[0], start, end) >= needs[1]):
            stop = end + 2
            match = search(text, max(0, start - lead), stop)
            while match is not None:  # as finditer goes on: from the end of the (non-empty) match
                found.append(match)
                match = search(text, match.end(), stop)
    return found
