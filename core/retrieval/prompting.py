"""Passages into chat messages: one form shared by serving and by evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polyadapt.retrieval.passage import Passage

#: What the model is told before the numbered passages.
INSTRUCTION = (
    "Answer the user's question using the numbered passages below. Base the answer on them, "
    "cite the passages you use by number like [1], and say so when they do not contain the answer."
)


def passages_block(passages: Sequence[Passage]) -> str:
    """The system text listing ``passages``: the instruction, then ``[n] (source)`` and the text of each."""
    parts = [INSTRUCTION, ""]
    for number, passage in enumerate(passages, start=1):
        parts.append(f"[{number}] (source: {passage.source})")
        parts.append(passage.text.strip())
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def with_passages(messages: list[dict[str, Any]], passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """``messages`` (OpenAI-style chat messages) with ``passages`` added to the system message.

    The passages (instruction, then each passage numbered with its source) join the leading
    system message when there is one with text content (after its text, so the deployment's
    own prompt comes first), else they become a new system message at the start: one system
    message either way, which every chat template accepts. No passages: the messages
    unchanged. A new list; the input is not modified.
    """
    if not passages:
        return list(messages)
    block = passages_block(passages)
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        first = messages[0]
        joined = f"{first['content'].rstrip()}\n\n{block}" if first["content"].strip() else block
        return [{**first, "content": joined}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]
