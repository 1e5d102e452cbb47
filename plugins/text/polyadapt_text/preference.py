"""Preference pairs as training examples: one prompt, the answer to prefer and the one to avoid.

The prompt is rendered with the chat template and its generation prompt (as
:func:`polyadapt_text.data.encode_prompt` encodes what the model will be asked); each answer
is the rest of the conversation rendered through that answer, so it ends with the template's
end-of-turn marker (an EOS is added where there is no template). As in TRL, the answer starts
where the tokenized prompt and the tokenized prompt + answer part ways, so a token merged
across the boundary is not counted twice.

A pair longer than ``training.max_length`` keeps the start of its answers: the prompt is cut
from the left first (to no less than half the budget), then the answers from the right.
:class:`PreferenceCollator` puts the chosen rows first and the rejected rows after them in
one padded batch, so one forward pass scores both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from polyadapt_text.data import IGNORE, prepend_bos, render_chat


@dataclass
class PreferenceExample:
    """One pair as token ids: the shared prompt and both answers (already cut to fit)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _encode(tokenizer: Any, text: str) -> list[int]:
    return prepend_bos(tokenizer, text, tokenizer(text, add_special_tokens=False)["input_ids"])


def _full_text(tokenizer: Any, prompt: list[dict[str, str]], prompt_text: str, answer: str) -> str:
    """The prompt followed by ``answer`` as one assistant turn, with its end-of-turn marker."""
    if getattr(tokenizer, "chat_template", None):
        full = render_chat(tokenizer, [*prompt, {"role": "assistant", "content": answer}])
        if full.startswith(prompt_text):
            return full
    return prompt_text + answer + (tokenizer.eos_token or "")


def encode_pair(tokenizer: Any, record: dict[str, Any]) -> PreferenceExample:
    """The token ids of one normalised preference record (see
    :mod:`polyadapt.modalities.preference`), not yet cut to any length."""
    prompt = record["prompt"]
    prompt_text = render_chat(tokenizer, prompt, add_generation_prompt=True)
    prompt_ids = _encode(tokenizer, prompt_text)
    chosen = _encode(tokenizer, _full_text(tokenizer, prompt, prompt_text, record["chosen"]))
    rejected = _encode(tokenizer, _full_text(tokenizer, prompt, prompt_text, record["rejected"]))
    shared = min(_common_prefix(prompt_ids, chosen), _common_prefix(prompt_ids, rejected))
    return PreferenceExample(prompt_ids[:shared], chosen[shared:], rejected[shared:])


def fit_pair(example: PreferenceExample, max_length: int) -> PreferenceExample | None:
    """``example`` cut so that prompt + each answer fits ``max_length`` tokens, keeping the
    end of the prompt and the start of the answers; None when an answer would be empty."""
    longest = max(len(example.chosen_ids), len(example.rejected_ids))
    prompt = example.prompt_ids
    if len(prompt) + longest > max_length:
        keep = max(max_length - longest, min(len(prompt), max_length // 2))
        prompt = prompt[len(prompt) - keep :] if keep > 0 else []
    room = max_length - len(prompt)
    chosen, rejected = example.chosen_ids[:room], example.rejected_ids[:room]
    if not prompt or not chosen or not rejected:
        return None
    return PreferenceExample(list(prompt), chosen, rejected)


def build_pairs(tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> list[PreferenceExample]:
    """Training (or held-out) pairs of normalised preference records, each cut to ``max_length``;
    a pair with no room left for its answers is left out."""
    pairs = (fit_pair(encode_pair(tokenizer, record), max_length) for record in records)
    return [pair for pair in pairs if pair is not None]


class PreferenceCollator:
    """Pads pairs into one batch: chosen rows ``0..n-1``, rejected rows ``n..2n-1``.

    ``labels`` hold the answer tokens (``IGNORE`` on the prompt and the padding), so the loss
    gathers log-probabilities only there; ``num_items`` is the number of pairs.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, pairs: list[PreferenceExample]) -> dict[str, Any]:
        rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
        length = max(len(prompt) + len(answer) for prompt, answer in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        for row, (prompt, answer) in enumerate(rows):
            n = len(prompt) + len(answer)
            input_ids[row, :n] = torch.tensor(prompt + answer)
            labels[row, len(prompt) : n] = torch.tensor(answer)
            attention[row, :n] = 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention,
            "num_items": len(pairs),
            "num_tokens": int(attention.sum()),
        }
