"""The domain-keywords task: a word distribution trained with polyadapt's shared trainer.

The "model" is one vector of logits over the words of the training data, so the example
trains in a blink with nothing to download. The contract is the one a language-model
plugin keeps: admitted data in, the shared trainer, a safetensors adapter out.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import torch
from polyadapt.distributed import is_main_process
from polyadapt.fileio import atomic_directory
from polyadapt.modalities.records import split_holdout
from polyadapt.modalities.text import load_text_dataset
from polyadapt.training import TrainingJob, train
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run
from safetensors.torch import load_file, save_file

WORD = re.compile(r"\[[a-z_]+\]|[a-z][a-z'-]*")  # words, and placeholders such as [employee_id]
STOPWORDS = {"a", "an", "and", "are", "at", "by", "each", "every", "for", "in", "is", "of", "on", "the", "to", "with"}
UNKNOWN = "<unk>"


def words(record: dict[str, Any]) -> list[str]:
    """The lower-cased words of a text record (of every turn of a chat record)."""
    text = record.get("text") or " ".join(turn["content"] for turn in record.get("messages", []))
    return WORD.findall(text.lower())


def encode(records: list[dict[str, Any]], index: dict[str, int]) -> list[list[int]]:
    """Word ids per record (0 for words outside the vocabulary); records without words left out."""
    return [ids for record in records if (ids := [index.get(word, 0) for word in words(record)])]


def load_data(run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training and held-out records; each dataset passes the run's governance policy first."""
    data = run.config.data
    train_set = run.admit(load_text_dataset(data.train, data.format, data.kind), role="train")
    if data.eval is not None:
        eval_set = run.admit(load_text_dataset(data.eval, data.format, data.kind), role="eval")
        return train_set.records, eval_set.records
    return split_holdout(train_set.records, data.eval_fraction, run.config.training.seed)


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


def adapt(run: Run) -> AdapterArtifact:
    """Fit the distribution to the admitted training data and save it as the adapter."""
    train_records, heldout = load_data(run)
    vocab = [UNKNOWN] + sorted({word for record in train_records for word in words(record)})
    index = {word: i for i, word in enumerate(vocab)}
    model = WordDistribution(len(vocab))
    job = TrainingJob(model=model, train_data=encode(train_records, index), collate=collate,
                      loss=summed_loss, eval_data=encode(heldout, index) or None)
    # The shared trainer: schedule, checkpoints and --resume, the progress bar, the loss log.
    result = train(job, run.config.training, run.dir, resume=run.resume)
    if is_main_process():
        with atomic_directory(run.adapter_dir) as folder:  # a crash never leaves half an adapter
            save_file({"logits": model.logits.detach().contiguous()}, str(folder / "keywords.safetensors"))
            (folder / "vocab.json").write_text(json.dumps(vocab))
    run.say("keywords: " + ", ".join(keywords(model.logits.detach(), vocab)))
    return AdapterArtifact(path=run.adapter_dir, base_model=run.config.base_model.id,
                           trainable_parameters=len(vocab), total_parameters=len(vocab),
                           train_metrics=result.to_dict())


def evaluate(run: Run, adapter: AdapterArtifact) -> EvalReport:
    """Held-out perplexity: the uniform base (every word 1 in len(vocab)) against the adapter."""
    _, heldout = load_data(run)
    vocab = json.loads((adapter.path / "vocab.json").read_text())
    logits = load_file(str(adapter.path / "keywords.safetensors"))["logits"]
    ids = [i for example in encode(heldout, {w: i for i, w in enumerate(vocab)}) for i in example]
    adapted = math.exp(float(-torch.log_softmax(logits, dim=0)[torch.tensor(ids)].mean())) if ids else math.nan
    row = MetricRow("domain (held-out)", "perplexity", float(len(vocab)), adapted, role="domain")
    sample = {"prompt": "keywords", "base": "(none: uniform)", "adapted": ", ".join(keywords(logits, vocab))}
    return EvalReport(rows=[row], samples=[sample])
