"""The statistics of one input that drift is measured on.

Text gets the same statistics whoever sends it (a prompt, a chat's user turns, an image
prompt, a training record's input): its length in characters and words, the shares of
non-ASCII characters and digits, its main script, a guess at its language, and, given the
training vocabulary, the share of its words the training data never had. A task adds numbers
of its own (``audio_seconds``, ``width``); they are compared like the rest.

A value is a ``float`` (compared as a distribution) or a ``str`` (compared as category
shares). A statistic that does not apply (no words, no letters) is left out, not zero.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Mapping

#: What one input measures: statistic name -> number or category.
Features = dict[str, float | str]

_WORD = re.compile(r"[^\W\d_]{2,}")
#: At most this many characters of one text are looked at (a 1 MB prompt costs no more).
MAX_CHARS = 20_000

#: Frequent function words of languages commonly served; a text is guessed to be in the
#: language with the most hits, when it has at least two.
_STOPWORDS: Mapping[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is in that it for with was on are this be as not you have but",
        "de": "der die das und ist nicht ein eine zu den mit sich auf für ich sie es dem des wir",
        "fr": "le la les et est un une des du dans que pour qui pas sur au avec ce sont nous",
        "es": "el la los las y es un una de que en por para con no se del al lo como",
        "it": "il lo la gli le e è un una di che per non con sono del della nel si come",
        "nl": "de het een en is van dat niet op te zijn met voor die er ook aan ik je",
        "pt": "o a os as e é um uma de que não para com em do da no na se por",
        "sv": "och att det som en är på för av med inte den till har jag ett om",
        "pl": "i w na nie się to że jest do z o jak ale co tak po od czy",
    }.items()
}


def words_of(text: str) -> list[str]:
    """The lower-cased words (two letters or more) of ``text``'s first :data:`MAX_CHARS`."""
    return _WORD.findall(text[:MAX_CHARS].lower())


def script_of(text: str) -> str | None:
    """The script most of ``text``'s letters are written in (``LATIN``, ``CYRILLIC``, ``CJK``…)."""
    scripts: Counter[str] = Counter()
    for ch in text[:MAX_CHARS]:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            scripts[name.split(" ", 1)[0] if name else "OTHER"] += 1
    return scripts.most_common(1)[0][0] if scripts else None


def language_of(words: list[str]) -> str:
    """A guess at the language of ``words`` from function words; ``unknown`` when unsure."""
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    lang, best = max(hits.items(), key=lambda kv: kv[1])
    return lang if best >= 2 else "unknown"


def text_features(text: str, vocabulary: Collection[str] | None = None) -> Features:
    """The statistics of ``text``; with ``vocabulary`` (the training data's words) also
    ``oov_share``, the share of its words the training data never had."""
    head = text[:MAX_CHARS]
    words = words_of(head)
    features: Features = {"chars": float(len(text)), "words": float(len(words))}
    if head:
        features["non_ascii_share"] = sum(ord(ch) > 127 for ch in head) / len(head)
        features["digit_share"] = sum(ch.isdigit() for ch in head) / len(head)
    script = script_of(head)
    if script is not None:
        features["script"] = script
    if words:
        features["language"] = language_of(words)
        if vocabulary:
            features["oov_share"] = sum(w not in vocabulary for w in words) / len(words)
    return features


def input_features(
    text: str | None, numbers: Mapping[str, float] | None = None, vocabulary: Collection[str] | None = None
) -> Features:
    """The statistics of one input: its text's (if any) and the task's ``numbers``.

    A number that is not finite is left out (it says nothing about the distribution)."""
    features: Features = text_features(text, vocabulary) if text is not None else {}
    for name, value in (numbers or {}).items():
        number = float(value)
        if number == number and abs(number) != float("inf"):
            features[name] = number
    return features
