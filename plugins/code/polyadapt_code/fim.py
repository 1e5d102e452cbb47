"""Fill-in-the-middle: sentinels, the PSM transform and its inverse, and FIM prompts.

A FIM sample is prefix-suffix-middle (PSM, as in Bavarian et al. 2022 and StarCoder)::

    <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle <eos>

The sentinels are the tokenizer's own FIM tokens when it has them: StarCoder/SantaCoder
style ``<fim_prefix>``/``<fim_suffix>``/``<fim_middle>`` (also ``<|fim_prefix|>``... as Qwen
names them). A tokenizer without them (SmolLM2, the tests' tiny Llama) gets the
**fallback** (``task_options.fim_fallback``): ``text`` spells the same three strings as
ordinary text, a few tokens each, which the adapter learns like any other pattern (no new
embedding rows, so the adapter stays a plain LoRA adapter); ``off`` trains causal samples
only and skips the FIM evaluation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

#: Sentinel names tried in order: (prefix, suffix, middle).
SENTINEL_SETS = (
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<PRE>", "<SUF>", "<MID>"),
)
#: The strings the ``text`` fallback spells out.
FALLBACK = SENTINEL_SETS[0]


@dataclass(frozen=True)
class FimTokens:
    """The token ids of the three sentinels (several ids each for the text fallback)."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    middle: tuple[int, ...]
    native: bool  # the tokenizer's own single tokens

    def prompt_ids(self, prefix_ids: list[int], suffix_ids: list[int]) -> list[int]:
        """``<pre> prefix <suf> suffix <mid>``: what the model completes with the middle."""
        return [*self.prefix, *prefix_ids, *self.suffix, *suffix_ids, *self.middle]


def _single_id(tokenizer: Any, token: str) -> int | None:
    vocab = tokenizer.get_vocab()
    if token not in vocab:
        return None
    ids = tokenizer.encode(token, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def fim_tokens(tokenizer: Any, fallback: str = "text") -> FimTokens | None:
    """The tokenizer's FIM sentinels, the text fallback, or None (``fallback="off"``)."""
    for names in SENTINEL_SETS:
        ids = [_single_id(tokenizer, name) for name in names]
        if all(i is not None for i in ids):
            return FimTokens((ids[0],), (ids[1],), (ids[2],), native=True)
    if fallback == "off":
        return None
    encoded = [tuple(tokenizer.encode(name, add_special_tokens=False)) for name in FALLBACK]
    return FimTokens(*encoded, native=False)


def split_points(text: str, rng: random.Random) -> tuple[str, str, str]:
    """(prefix, middle, suffix) of ``text`` at two uniformly drawn character positions.

    ``prefix + middle + suffix == text`` always.
    """
    a, b = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
    return text[:a], text[a:b], text[b:]


def to_psm(tokenizer: Any, tokens: FimTokens, prefix: str, middle: str, suffix: str) -> list[int]:
    """Token ids of the PSM sample for the three parts, ending with EOS."""
    encode = lambda s: tokenizer.encode(s, add_special_tokens=False) if s else []
    ids = tokens.prompt_ids(encode(prefix), encode(suffix)) + encode(middle)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def _find(haystack: list[int], needle: tuple[int, ...], start: int = 0) -> int:
    n = len(needle)
    for i in range(start, len(haystack) - n + 1):
        if tuple(haystack[i : i + n]) == needle:
            return i
    return -1


def from_psm(tokenizer: Any, tokens: FimTokens, ids: list[int]) -> tuple[str, str, str]:
    """The inverse of :func:`to_psm`: (prefix, middle, suffix) decoded from a PSM sample."""
    p = _find(ids, tokens.prefix)
    s = _find(ids, tokens.suffix, p + len(tokens.prefix))
    m = _find(ids, tokens.middle, s + len(tokens.suffix))
    if min(p, s, m) < 0:
        raise ValueError("not a PSM sample: a sentinel is missing")
    end = len(ids) - 1 if ids and ids[-1] == tokenizer.eos_token_id else len(ids)
    decode = lambda part: tokenizer.decode(part, skip_special_tokens=False)
    return (
        decode(ids[p + len(tokens.prefix) : s]),
        decode(ids[m + len(tokens.middle) : end]),
        decode(ids[s + len(tokens.suffix) : m]),
    )
