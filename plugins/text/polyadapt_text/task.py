"""The text-generation task: what the core asks about causal language models.

This module is imported when polyadapt starts (through the entry module), so it imports
nothing heavy: torch, transformers and peft are imported inside the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.task import Task
from polyadapt_text.options import PREFERENCE_OBJECTIVES, TextOptions

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from polyadapt.lineage.metricgate import MetricGate
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec


def objective(run: Run) -> str:
    """The run's ``task_options.objective`` (``sft`` for a run without options)."""
    return str(getattr(run.options, "objective", "sft"))


def trains_on_pairs(run: Run) -> bool:
    """Whether the run's objective is a preference one (``dpo``, ``simpo`` or ``orpo``)."""
    return objective(run) in PREFERENCE_OBJECTIVES


@dataclass
class CausalBase:
    """A loaded causal LM and its tokenizer (what :meth:`TextGenerationTask.load_base` returns)."""

    model: Any
    tokenizer: Any


class TextGenerationTask(Task):
    """Causal LM adaptation on plain text, instruction pairs or chat records, or DPO, SimPO or
    ORPO on preference pairs (``task_options.objective: dpo``, ``simpo``, ``orpo``)."""

    name = "text-generation"
    modality = "text"
    description = (
        "Causal LM on plain text, instruction pairs or chat, or DPO, SimPO or ORPO on preference pairs "
        "(any AutoModelForCausalLM; GGUF too)"
    )
    default_base = "HuggingFaceTB/SmolLM2-135M-Instruct"
    options_model = TextOptions
    #: ``polyadapt export --format``: the adapter, the merged model, GGUF (see :mod:`polyadapt_text.export`).
    export_formats = {
        "peft": "the PEFT adapter folder as the run saved it",
        "merged": "base + adapter merged: safetensors, config and tokenizer for "
        "AutoModelForCausalLM.from_pretrained (--quant f32, f16 or bf16)",
        "gguf": "base + adapter merged as one GGUF file for llama.cpp, Ollama, LM Studio (--quant f16 or q8_0)",
    }
    #: ``polyadapt serve --engine vllm`` too (:mod:`polyadapt_text.vllm_engine`).
    serve_engines = frozenset({"transformers", "vllm"})

    def run_gate(self, task_options: Mapping[str, Any] | None) -> MetricGate | None:
        """Under a preference objective its gate (:data:`polyadapt_text.objective.OBJECTIVE_GATES`:
        ``DPO_GATE``, or ``REFERENCE_FREE_GATE`` for simpo and orpo), else the task's :attr:`gate`."""
        from polyadapt_text.objective import OBJECTIVE_GATES

        return OBJECTIVE_GATES.get(str((task_options or {}).get("objective")), self.gate)

    def load_dataset(self, run: Run, path: Path, role: str) -> Dataset:
        """Text records, or preference pairs (``data.kind: preference``, or ``auto`` under
        a preference objective) for the domain sets; see :mod:`polyadapt_text.objective`."""
        from polyadapt_text.objective import load_dataset

        return load_dataset(run, path, role, objective(run))

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
        """Training sequences (packed, loss on assistant tokens for chats) and the causal LM loss;
        under ``objective: dpo``, ``simpo`` or ``orpo``, preference pairs and that objective's loss
        (:mod:`polyadapt_text.dpo`)."""
        if trains_on_pairs(run):
            from polyadapt_text.objective import preference_job

            return preference_job(run, base, model, data)
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
        """Perplexity base vs adapted on held-out domain and general text, plus samples; under
        a preference objective, preference and reward accuracy on held-out pairs instead of the domain
        perplexity (:mod:`polyadapt_text.preference_eval`)."""
        if trains_on_pairs(run):
            from polyadapt_text.preference_eval import evaluate_preferences

            return evaluate_preferences(run, adapter, data)
        from polyadapt_text.evaluate import evaluate

        return evaluate(run, adapter, data)

    def export(
        self, run: Run, adapter: AdapterArtifact, fmt: str, options: Mapping[str, Any], folder: Path
    ) -> dict[str, Any]:
        """``merged`` (safetensors) or ``gguf`` (llama.cpp), each checked by loading it back
        and comparing logits with the merged model (:mod:`polyadapt_text.export`); ``peft``: a copy."""
        if fmt == "peft":
            return super().export(run, adapter, fmt, options, folder)
        from polyadapt_text.export import export

        return export(run, adapter, fmt, options, folder)

    def servable(self, spec: ServeSpec) -> Servable:
        """The base loaded once, completions and chat with per-request adapters (in this process,
        or through vLLM with ``--engine vllm``)."""
        if spec.engine == "vllm":
            from polyadapt_text.vllm_engine import VllmServable

            return VllmServable(spec)
        from polyadapt_text.serve import TextServable

        return TextServable(spec)
