"""The shared pass over runs of digits (``textfacts.number_runs`` / ``run_matches``) finds
exactly what each number pattern finds over the whole text, and the secret scanner's
needle gates open exactly the rules whose needles occur."""

from __future__ import annotations

import random
import re

import pytest

from polyadapt.governance import contact, financial, identity, network, secrets, textfacts

#: Digits (ASCII and two Unicode ``\d``), every run separator, letters and the characters
#: the patterns' look-arounds test (``_``, ``.``, ``-``, ``/``, ``#``).
ALPHABET = "0123456789" * 4 + "٣５ \t().-/+" * 2 + "aBxX_#:\n,é"
#: (pattern, shortest, lead) as each scanner calls ``run_matches``.
USES = [
    (contact._PHONE_WINDOW, 7, 2),
    (contact._PHONE_WINDOW, 8, 2),
    (financial._CARD_PATTERN, 12, 0),
    (identity._SSN_PATTERN, 11, 0),
    (network._IPV4_PATTERN, 7, 0),
]


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 70))) for _ in range(n)]
    shapes = ["+44 (0)20 7946 0958", "4111-1111-1111-1111", "123-45-6789", "10.0.0.1", "x(+31 6-1234 5678)"]
    shapes.append("078 05 1120")
    for _ in range(n // 4):  # real shapes glued to random neighbours
        left, right = rng.choice(texts), rng.choice(texts)
        texts.append(left[: rng.randint(0, 6)] + rng.choice(shapes) + right[: rng.randint(0, 6)])
    return texts


def _run_length(text: str, at: int) -> int:
    """The length of the run of digits and separators around ``at``, from its first digit on."""
    start = at
    while start > 0 and (text[start - 1].isdecimal() or text[start - 1] in textfacts.RUN_CHARS):
        start -= 1
    end = at
    while end < len(text) and (text[end].isdecimal() or text[end] in textfacts.RUN_CHARS):
        end += 1
    first = next(i for i in range(start, end) if text[i].isdecimal())
    return end - first


@pytest.mark.parametrize(("pattern", "shortest", "lead"), USES)
def test_run_matches_finds_what_finditer_finds_over_the_whole_text(pattern, shortest, lead):
    checked = 0
    for text in _texts(17, 10_000):
        runs = [(m.span(), m.groups()) for m in textfacts.run_matches(pattern, text, shortest, lead)]
        # the matches in runs of ``shortest`` characters or more, from the run's first digit on
        expected = [(m.span(), m.groups()) for m in pattern.finditer(text) if _run_length(text, m.start()) >= shortest]
        assert runs == expected, text
        checked += len(runs)
    assert checked > 50  # the texts held matches of every pattern


def test_number_runs_are_maximal_runs_from_their_first_digit():
    for text in _texts(5, 4_000):
        runs = textfacts.number_runs(text)
        assert textfacts.number_runs(text) is runs  # computed once per text
        for start, end in runs:
            assert end - start >= textfacts.SHORTEST_RUN
            assert text[start].isdecimal()
            assert all(ch.isdecimal() or ch in textfacts.RUN_CHARS for ch in text[start:end])
            assert end == len(text) or not (text[end].isdecimal() or text[end] in textfacts.RUN_CHARS)
            before = start
            while before > 0 and text[before - 1] in textfacts.RUN_CHARS:
                before -= 1  # only separators before the first digit
            assert not (before > 0 and text[before - 1].isdecimal())
        # every long enough stretch of run characters from a digit is covered by a run
        for m in re.finditer(r"\d[\d \t().\-/+]*", text):
            if m.end() - m.start() >= textfacts.SHORTEST_RUN:
                assert m.span() in runs, text


def test_scanners_find_numbers_through_the_runs():
    text = "call +44 20 7946 0958, card 4111 1111 1111 1111, ssn 123-45-6789, host 192.168.10.20, AB 12 34 56 C"
    scanners = [contact.PhoneScanner(), financial.PaymentCardScanner(), identity.NationalIdScanner()]
    found = {(f.type, text[f.start : f.end]) for s in [*scanners, network.IpAddressScanner()] for f in s.scan(text)}
    assert found >= {
        ("phone", "+44 20 7946 0958"),
        ("payment_card", "4111 1111 1111 1111"),
        ("national_id", "123-45-6789"),
        ("ip_address", "192.168.10.20"),
        ("national_id", "AB 12 34 56 C"),
    }


def test_needle_gates_open_exactly_the_rules_whose_needles_occur():
    needles = [(n, i, rule.fold) for i, rule in enumerate(secrets._RULES) for n in rule.needles]
    pieces = [n for n, _, _ in needles] + ["gl", "gh", "g", "l", "-", "_", "sk", "A", "x", " ", "T-", "é", "K"]
    rng = random.Random(9)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) for _ in range(20_000)]
    texts += [t.upper() for t in texts[:2000]] + ["glpat-x", "gl-pat", "ghp_1", "g-hp_", "API-KEY"]
    opened = set()
    for text in texts:
        lower = text.lower()
        expected = sorted({i for n, i, fold in needles if n in (lower if fold else text)})
        assert secrets._rules_to_run(text, lower) == expected, text
        opened.update(expected)
    assert opened == set(range(len(secrets._RULES))) - {i for i, r in enumerate(secrets._RULES) if not r.needles}
