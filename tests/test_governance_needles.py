"""NeedleSet finds every occurrence of its fixed strings, overlapping ones and one-character ones too."""

from __future__ import annotations

import random

import pytest

from polyadapt.governance.needles import NeedleSet


def test_values_and_starts_of_overlapping_needles() -> None:
    needles = NeedleSet([("sk-", "openai"), ("sk-ant-", "anthropic"), ("ant", "word"), (".", "dot")])
    text = "key sk-ant-abc. and sk-xyz"
    assert sorted(needles.values_in(text)) == ["anthropic", "dot", "openai", "openai", "word"]
    assert needles.starts_in(text) == [4, 7, 14, 20]
    assert sorted((at, needle) for at, needle, _ in needles.occurrences(text)) == [
        (4, "sk-"),
        (4, "sk-ant-"),
        (7, "ant"),
        (14, "."),
        (20, "sk-"),
    ]
    assert needles.any_in("plain words") is False
    assert needles.any_in("a.b") is True


def test_only_one_character_needles_and_no_needles() -> None:
    dots = NeedleSet([(".", 1), ("_", 2)])
    assert dots.starts_in("a.b_c.d") == [1, 3, 5]
    assert list(dots.values_in("a.b.c")) == [1]  # a one-character needle is reported once
    empty: NeedleSet[int] = NeedleSet([])
    assert list(empty.values_in("anything")) == [] and empty.starts_in("x") == [] and not empty.any_in("x")
    with pytest.raises(ValueError, match="must not be empty"):
        NeedleSet([("", 0)])


def test_starts_agree_with_substring_search_on_random_text() -> None:
    rng = random.Random(7)
    words = ["id", "sin", "ssn", "nie", "tax", "n°", "natio", "a", "ie"]
    needles = NeedleSet((w, w) for w in words)
    for _ in range(200):
        text = "".join(rng.choice("aeinst dxo°n") for _ in range(rng.randint(0, 60)))
        expected = sorted({i for w in words for i in range(len(text)) if text.startswith(w, i)})
        assert needles.starts_in(text) == expected
        assert set(needles.values_in(text)) == {w for w in words if w in text}
