"""Facts about one text that several pattern scanners use, computed once per text.

:func:`scan_text` runs ten scanners over the same string; each used to lower-case it
itself. :func:`lowered` keeps the last text's lower-cased form (a one-entry cache keyed by
the string object, replaced atomically, so threads cannot mix two texts up), and
:func:`plain_case` says when a cheap substring test on that form is exact: a case-insensitive
regex (``(?i)passport``) matches ``text`` only where ``lowered(text)`` holds the lower-cased
word, unless the text has one of the four characters that Python's ``re`` matches to an
ASCII letter without ``str.lower`` folding them to it (dotted and dotless I, the Kelvin sign,
the long s).
"""

from __future__ import annotations

__all__ = ["lowered", "plain_case", "first_at"]

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
