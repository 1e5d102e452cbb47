"""The domain-keywords task: what polyadapt asks about it, answered with a word distribution.

polyadapt runs everything that is the same for every task (governance, the data files, the
shared trainer, the atomic save, the registry); the task answers only what is its own.
The entry module imports this module at start-up, so it imports nothing heavy: torch comes
with ``polyadapt_keywords.model``, imported inside the methods.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.errors import ConfigError
from polyadapt.task import Task
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import RunData
    from polyadapt.training import TrainingJob


class KeywordsTask(Task):
    """Learn which words a domain uses: a distribution over the words of the training data."""

    name = "domain-keywords"
    modality = "text"  # the records are text: the default load_dataset reads them
    description = "Learn a domain's word distribution and its keywords (a tiny example)"
    default_base = "uniform"

    def load_base(self, run: Run) -> list[str]:
        """The base, ``uniform``: every word of the admitted training data equally likely.

        Its vocabulary comes from the data, which the core has read and governed already
        (``polyadapt.steps.run_data`` returns it; it is read once per run).
        """
        from polyadapt.steps import run_data

        from polyadapt_keywords.model import vocabulary

        if run.config.base_model.id != "uniform":
            raise ConfigError(
                f"base_model.id: the domain-keywords task starts from 'uniform' (every word "
                f"equally likely), not {run.config.base_model.id!r}; write base_model: uniform"
            )
        return vocabulary(run_data(run).train)

    def attach_lora(self, run: Run, base: list[str]) -> Any:
        """No LoRA here: the trainable model is the whole, tiny, vector of logits. It starts
        at the base (all zeros: uniform), as a fresh LoRA adapter starts at its base model."""
        from polyadapt_keywords.model import WordDistribution

        return WordDistribution(len(base))

    def training_job(self, run: Run, base: list[str], model: Any, data: RunData) -> TrainingJob:
        """Word ids per record, a collate function and the summed negative log-likelihood."""
        from polyadapt.training import TrainingJob

        from polyadapt_keywords.model import collate, encode, summed_loss

        index = {word: i for i, word in enumerate(base)}
        train = encode(data.train + data.replay, index)
        return TrainingJob(
            model=model,
            train_data=train,
            collate=collate,
            loss=summed_loss,
            eval_data=encode(data.heldout, index) or None,
            facts={"train_words": sum(len(example) for example in train)},
        )

    def save_adapter(self, run: Run, base: list[str], model: Any, folder: Path) -> None:
        """The logits as safetensors and the vocabulary beside them (the core makes it atomic)."""
        from safetensors.torch import save_file

        from polyadapt_keywords.model import keywords

        logits = model.logits.detach().cpu().contiguous()
        save_file({"logits": logits}, str(folder / "keywords.safetensors"))
        (folder / "vocab.json").write_text(json.dumps(base))
        run.say("keywords: " + ", ".join(keywords(logits, base)))

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """Held-out perplexity: the uniform base (every word 1 in len(vocab)) against the adapter."""
        from polyadapt_keywords.model import encode, keywords, load_adapter, perplexity

        vocab, logits = load_adapter(adapter.path)
        heldout = encode(data.heldout, {word: i for i, word in enumerate(vocab)})
        row = MetricRow(
            "domain (held-out)", "perplexity", float(len(vocab)), perplexity(logits, heldout), role="domain"
        )
        sample = {"prompt": "keywords", "base": "(none: uniform)", "adapted": ", ".join(keywords(logits, vocab))}
        return EvalReport(rows=[row], samples=[sample])
