"""The domain-keywords model: one vector of logits over the words of the training data.

It trains in a blink with nothing to download. The task (``polyadapt_keywords.task``)
imports this module inside its methods only: torch is imported here.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

WORD = re.compile(r"\[[a-z_]+\]|[a-z][a-z'-]*")  # words, and placeholders such as [employee_id]
STOPWORDS = {"a", "an", "and", "are", "at", "by", "each", "every", "for", "in", "is", "of", "on", "the", "to", "with"}
UNKNOWN = "<unk>"


def words(record: dict[str, Any]) -> list[str]:
    """The lower-cased words of a text record (of every turn of a chat record)."""
    text = record.get("text") or " ".join(turn["content"] for turn in record.get("messages", []))
    return WORD.findall(text.lower())


def vocabulary(records: list[dict[str, Any]]) -> list[str]:
    """``<unk>`` and every word of ``records``, sorted."""
    return [UNKNOWN] + sorted({word for record in records for word in words(record)})


def encode(records: list[dict[str, Any]], index: dict[str, int]) -> list[list[int]]:
    """Word ids per record (0 for words outside the vocabulary); records without words left out."""
    return [ids for record in records if (ids := [index.get(word, 0) for word in words(record)])]


class WordDistribution(torch.nn.Module):
    """p(word) = softmax(logits); training moves the logits towards the domain's usage."""

    def __init__(self, size: int):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(size))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return -torch.log_softmax(self.logits, dim=0)[ids].sum()


def collate(examples: list[list[int]]) -> dict[str, Any]:
    """One batch: the word ids of the examples; ``num_items`` (the trainer needs it) counts them."""
    ids = [i for example in examples for i in example]
    return {"ids": torch.tensor(ids, dtype=torch.long), "num_items": len(ids), "num_tokens": len(ids)}


def summed_loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The summed negative log-likelihood; the trainer divides by the step's ``num_items``."""
    return model(batch["ids"])


def keywords(logits: torch.Tensor, vocab: list[str], k: int = 5) -> list[str]:
    """The ``k`` most likely words that are neither stop words nor placeholders."""
    order = torch.argsort(logits, descending=True).tolist()
    chosen = [vocab[i] for i in order if vocab[i] not in STOPWORDS and vocab[i][0] not in "[<"]
    return chosen[:k]


def load_adapter(folder: Path) -> tuple[list[str], torch.Tensor]:
    """The vocabulary and the logits a run saved in ``folder``."""
    vocab = json.loads((folder / "vocab.json").read_text())
    return vocab, load_file(str(folder / "keywords.safetensors"))["logits"]


def perplexity(logits: torch.Tensor, examples: list[list[int]]) -> float:
    """exp of the mean negative log-likelihood per word of ``examples`` (NaN without words)."""
    ids = [i for example in examples for i in example]
    if not ids:
        return math.nan
    return math.exp(float(-torch.log_softmax(logits, dim=0)[torch.tensor(ids)].mean()))
