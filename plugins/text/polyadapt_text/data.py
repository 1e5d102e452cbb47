"""Turning normalised text records into training sequences.

- chat and instruction records go through the tokenizer's chat template when it has one
  (a plain ``role: content`` layout otherwise); only assistant tokens carry loss;
- plain text is tokenized with an EOS after each document;
- with packing, sequences are filled up to ``max_length`` (plain text is concatenated and
  cut; conversations are kept whole and packed first-fit), so no compute goes to padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

IGNORE = -100


@dataclass
class Example:
    """One training sequence: token ids and labels (``IGNORE`` where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]


def _fallback_render(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
    return text + ("<|assistant|>\n" if add_generation_prompt else "")


def render_chat(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The conversation as the model sees it: the chat template, or a plain fallback."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return _fallback_render(messages, add_generation_prompt)


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant replies.

    Each span runs from the end of the prompt rendered up to that reply (with the
    generation prompt) to the end of the conversation rendered through it, so it covers
    the reply and the end-of-turn marker the model must learn to emit.
    """
    full = render_chat(tokenizer, messages)
    spans = []
    for index, turn in enumerate(messages):
        if turn["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:index], add_generation_prompt=True)
        through = render_chat(tokenizer, messages[: index + 1])
        if full.startswith(through) and through.startswith(before):
            spans.append((len(before), len(through)))
        else:  # a template that rewrites earlier turns: fall back to locating the content
            start = full.find(turn["content"], spans[-1][1] if spans else 0)
            if start >= 0:
                spans.append((start, start + len(turn["content"])))
    return full, spans


def tokenize_chat(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> Example:
    """Token ids of a conversation with labels on assistant tokens only."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels = []
    for token, (start, end) in zip(ids, encoded["offset_mapping"]):
        inside = any(s <= start < e or (start == end and s < end <= e and start >= s) for s, e in spans)
        labels.append(token if inside else IGNORE)
    with_bos = prepend_bos(tokenizer, text, ids)
    labels = [IGNORE] * (len(with_bos) - len(ids)) + labels
    return Example(with_bos[:max_length], labels[:max_length])


def prepend_bos(tokenizer: Any, text: str, ids: list[int]) -> list[int]:
    """``ids`` with BOS in front when the tokenizer adds BOS but the chat template did not."""
    if tokenizer.bos_token_id is None or text.startswith(tokenizer.bos_token or "\0"):
        return list(ids)
    return [tokenizer.bos_token_id, *ids] if getattr(tokenizer, "add_bos_token", False) else list(ids)


def encode_prompt(tokenizer: Any, prompt: list[dict[str, str]] | str) -> list[int]:
    """Token ids to generate from, encoded exactly as training encodes the same text.

    A chat (list of messages) goes through the chat template with the generation prompt;
    a plain string is tokenized with the tokenizer's special tokens.
    """
    if isinstance(prompt, list):
        text = render_chat(tokenizer, prompt, add_generation_prompt=True)
        return prepend_bos(tokenizer, text, tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def tokenize_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a plain-text document followed by EOS."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def build_examples(tokenizer: Any, records: list[dict[str, Any]], max_length: int, packing: bool) -> list[Example]:
    """Training sequences from normalised records (see :mod:`polyadapt.modalities.text`)."""
    # a chat record may keep a field called "text" among its extra fields: its messages win
    text_docs = [r["text"] for r in records if "text" in r and "messages" not in r]
    chats = [r["messages"] for r in records if "messages" in r]
    examples: list[Example] = []
    if text_docs:
        streams = [tokenize_text(tokenizer, doc) for doc in text_docs]
        if packing:
            flat = [token for stream in streams for token in stream]
            for start in range(0, len(flat), max_length):
                chunk = flat[start : start + max_length]
                if len(chunk) >= 2:
                    examples.append(Example(chunk, list(chunk)))
        else:
            for stream in streams:
                for start in range(0, len(stream), max_length):
                    chunk = stream[start : start + max_length]
                    if len(chunk) >= 2:
                        examples.append(Example(chunk, list(chunk)))
    chat_examples = [tokenize_chat(tokenizer, messages, max_length) for messages in chats]
    chat_examples = [e for e in chat_examples if any(label != IGNORE for label in e.labels[1:])]
    examples += pack_first_fit(chat_examples, max_length) if packing else chat_examples
    return examples


def pack_first_fit(examples: list[Example], max_length: int) -> list[Example]:
    """Pack whole examples into sequences of at most ``max_length`` (first fit, longest first)."""
    bins: list[Example] = []
    for example in sorted(examples, key=lambda e: len(e.input_ids), reverse=True):
        for bin_ in bins:
            if len(bin_.input_ids) + len(example.input_ids) <= max_length:
                bin_.input_ids.extend(example.input_ids)
                bin_.labels.extend(example.labels)
                break
        else:
            bins.append(Example(list(example.input_ids), list(example.labels)))
    return bins


class Collator:
    """Pads a list of :class:`Example` into a batch and counts its loss items and tokens."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        length = max(len(e.input_ids) for e in examples)
        input_ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(examples), length), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example.input_ids)
            input_ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            attention[row, :n] = 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention,
            # targets are shifted by one: the first label of each row is never predicted
            "num_items": int((labels[:, 1:] != IGNORE).sum()),
            "num_tokens": int(attention.sum()),
        }
