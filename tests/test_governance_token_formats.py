"""Vendor token formats (polyadapt.governance.token_formats): a token of every format, generated
from the format's own data, is found as a secret wherever it is written; placeholders, cut-off
tokens and prefixes glued to longer words are not."""

from __future__ import annotations

import random
import re

import pytest

from polyadapt.governance.secrets import secret_spans
from polyadapt.governance.token_formats import ALPHABETS, FORMATS, Part, TokenFormat


def _characters(alphabet: str) -> str:
    """The characters of a character-class body such as ``A-Za-z0-9_-``."""
    body = ALPHABETS[alphabet]
    chars = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.extend(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.append(body[i])
            i += 1
    return "".join(chars)


def _token(fmt: TokenFormat, rng: random.Random, shorten: bool = False) -> str:
    """A random token of ``fmt`` (``shorten``: its first random part one character too short)."""
    pieces = [fmt.prefixes[0]] if fmt.prefixes else []
    first = True
    for part in fmt.parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        length = part.low if part.high is None else rng.randint(part.low, min(part.high, part.low + 40))
        if shorten and first and part.low > 0:
            length = part.low - 1
        first = first and part.low == 0
        chars = _characters(part.alphabet) if part.alphabet == "pad" else _characters(part.alphabet).replace("=", "")
        pieces.append("".join(rng.choice(chars) for _ in range(length)))
    return "".join(pieces)


def _found(text: str, token: str) -> bool:
    at = text.index(token)
    return (at, at + len(token)) in secret_spans(text)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_format_is_found_where_it_is_written(fmt: TokenFormat) -> None:
    rng = random.Random(fmt.name)
    token = _token(fmt, rng)
    assert fmt.pattern().fullmatch(token), token
    for text in (
        f"export DEPLOY_CREDENTIAL={token}\n",
        f'{{"value": "{token}", "note": "rotated monthly"}}',
        f"Use {token} for the nightly job.",
        f"client = Client('{token}')",
    ):
        assert _found(text, token), (fmt.name, text)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_placeholders_short_and_glued_tokens_are_not_secrets(fmt: TokenFormat) -> None:
    rng = random.Random(fmt.name + "/near")
    token = _token(fmt, rng)
    placeholder = re.sub(r"[A-Za-z0-9]", "x", token[len(fmt.prefixes[0]) :]) if fmt.prefixes else None
    if placeholder is not None:
        fake = fmt.prefixes[0] + placeholder
        assert not any(fake[a:b] == fake for a, b in secret_spans(f"Use {fake} here.")), fake
    short = _token(fmt, random.Random(fmt.name + "/near"), shorten=True)
    assert not any(short in f"Use {short} here."[a:b] for a, b in secret_spans(f"Use {short} here.")), short
    if fmt.prefixes and fmt.prefixes[0][0].isalnum():
        glued = "Q" + token
        assert (5, 5 + len(token)) not in secret_spans(f"Use {glued} here."), glued


def test_random_parts_are_what_the_entropy_check_reads() -> None:
    fmt = TokenFormat("demo", ("demo_",), (Part("hex", 8), "-", Part("alnum", 4)))
    pattern = fmt.pattern()
    assert fmt.random_parts("demo_0a1b2c3d-Zz90", pattern) == "0a1b2c3dZz90"
    # a low-entropy body is rejected even though the shape fits
    assert pattern.fullmatch("demo_aaaaaaab-abab")


def test_formats_have_unique_names_and_known_alphabets() -> None:
    names = [f.name for f in FORMATS]
    assert len(names) == len(set(names))
    for fmt in FORMATS:
        assert fmt.gate_needles(), fmt.name
        for part in fmt.parts:
            if isinstance(part, Part):
                assert part.alphabet in ALPHABETS, fmt.name
