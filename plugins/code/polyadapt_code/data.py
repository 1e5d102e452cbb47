"""Training samples from source files: chunks, causal and fill-in-the-middle, packed.

1. each file is cut into chunks that fit ``max_length`` tokens with room for the FIM
   sentinels, at line ends where one lies in the last quarter of the window;
2. each chunk becomes a FIM sample (PSM, see :mod:`polyadapt_code.fim`) with probability
   ``fim_rate``, else a causal sample (the chunk and EOS); loss is taken on every token;
3. with ``training.packing`` whole samples are packed first-fit into sequences of up to
   ``max_length`` tokens (the text plugin's packer), so no sample is cut in two.

The draws come from ``random.Random(seed)``: the same files and seed give the same samples.
"""

from __future__ import annotations

import random
from typing import Any

from polyadapt_text.data import Example, pack_first_fit

from polyadapt_code.fim import FimTokens, split_points, to_psm

#: Tokens kept free in each chunk for sentinels and EOS.
RESERVED = 8


def chunk_text(tokenizer: Any, text: str, budget: int) -> list[str]:
    """``text`` cut into pieces of about ``budget`` tokens, preferring line ends.

    ``"".join(chunks) == text``.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    if len(offsets) <= budget:
        return [text] if text else []
    chunks, start, token = [], 0, 0
    while token + budget < len(offsets):
        cut = offsets[token + budget][0]  # where the first token past the window begins
        newline = text.rfind("\n", start, cut)
        floor = offsets[token + budget * 3 // 4][0]
        if newline >= floor:
            cut = newline + 1
        if cut <= start:  # a single token longer than the window: take it whole
            cut = offsets[token + budget][1]
        chunks.append(text[start:cut])
        start = cut
        while token < len(offsets) and offsets[token][0] < cut:
            token += 1
    if start < len(text):
        chunks.append(text[start:])
    return chunks


def causal_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` followed by EOS."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def build_code_examples(
    tokenizer: Any,
    records: list[dict[str, Any]],
    *,
    max_length: int,
    packing: bool,
    fim: FimTokens | None,
    fim_rate: float,
    seed: int,
) -> tuple[list[Example], dict[str, int]]:
    """Training sequences from code records, and counts (``causal``, ``fim``, ``sequences``)."""
    rng = random.Random(seed)
    budget = max(8, max_length - RESERVED - (len(fim.prefix) + len(fim.suffix) + len(fim.middle) if fim else 0))
    examples: list[Example] = []
    counts = {"causal": 0, "fim": 0}
    for record in records:
        for chunk in chunk_text(tokenizer, record["text"], budget):
            if fim is not None and rng.random() < fim_rate:
                ids = to_psm(tokenizer, fim, *split_points(chunk, rng))
                counts["fim"] += 1
            else:
                ids = causal_ids(tokenizer, chunk)
                counts["causal"] += 1
            ids = ids[:max_length]
            if len(ids) >= 2:
                examples.append(Example(ids, list(ids)))
    if packing:
        examples = pack_first_fit(examples, max_length)
    counts["sequences"] = len(examples)
    return examples, counts
