"""The text-generation task: what the core asks about causal language models.

This module is imported when polyadapt starts (through the entry module), so it imports
nothing heavy: torch, transformers and peft are imported inside the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.task import Task

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import RunData
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec


@dataclass
class CausalBase:
    """A loaded causal LM and its tokenizer (what :meth:`TextGenerationTask.load_base` returns)."""

    model: Any
    tokenizer: Any


class TextGenerationTask(Task):
    """Causal LM adaptation on plain text, instruction pairs or chat records."""

    name = "text-generation"
    modality = "text"
    description = "Causal LM on plain text, instruction pairs or chat (any AutoModelForCausalLM; GGUF too)"
    default_base = "HuggingFaceTB/SmolLM2-135M-Instruct"

    def builtin_dataset(self, role: str) -> tuple[Path, str] | None:
        """The general-English sets shipped with the plugin: ``general_eval`` for the
        forgetting check, ``general_replay`` for replay."""
        from polyadapt_text.datasets import BUILTIN_LICENCE, builtin_path

        shipped = {"general": "general_eval", "replay": "general_replay"}.get(role)
        return (builtin_path(shipped), BUILTIN_LICENCE) if shipped else None

    def load_base(self, run: Run) -> CausalBase:
        """The frozen causal LM (hub id, folder or GGUF file) and its tokenizer."""
        from polyadapt_text.model import load_base

        return CausalBase(*load_base(run.config.base_model))

    def lora_targets(self, run: Run, base: CausalBase) -> list[str] | str:
        """The config's modules, or the model family's attention projections for ``auto``."""
        from polyadapt_text.model import lora_targets

        return lora_targets(base.model, run.config.lora)

    def context_length(self, run: Run, base: CausalBase) -> int | None:
        """The model's position limit (``max_position_embeddings`` or its family's name for it)."""
        from polyadapt_text.model import context_length

        return context_length(base.model)

    def attach_lora(self, run: Run, base: CausalBase) -> Any:
        """A ``PeftModelForCausalLM`` with a fresh adapter on :meth:`lora_targets`."""
        from polyadapt.lora import attach_lora

        return attach_lora(base.model, run.config.lora, self.lora_targets(run, base), task_type="CAUSAL_LM")

    def training_job(self, run: Run, base: CausalBase, model: Any, data: RunData) -> TrainingJob:
        """Training sequences (packed, loss on assistant tokens for chats) and the causal LM loss."""
        from polyadapt.training import TrainingJob
        from polyadapt_text.data import Collator, build_examples
        from polyadapt_text.loss import CausalLMLoss, summed_loss

        training = run.config.training
        train = build_examples(base.tokenizer, data.train + data.replay, training.max_length, training.packing)
        heldout = build_examples(base.tokenizer, data.heldout, training.max_length, training.packing)
        return TrainingJob(
            model=CausalLMLoss(model),
            train_data=train,
            collate=Collator(base.tokenizer.pad_token_id),
            loss=summed_loss,
            eval_data=heldout or None,
            facts={"train_sequences": len(train)},
        )

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """Perplexity base vs adapted on held-out domain and general text, plus samples."""
        from polyadapt_text.evaluate import evaluate

        return evaluate(run, adapter, data)

    def servable(self, spec: ServeSpec) -> Servable:
        """The base loaded once, completions and chat with per-request adapters."""
        from polyadapt_text.serve import TextServable

        return TextServable(spec)
