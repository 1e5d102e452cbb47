"""polyadapt-text: LoRA adaptation of Hugging Face causal language models.

This entry module is imported when polyadapt starts, so it imports nothing heavy: the hook
implementations import torch, transformers and peft inside their bodies.
"""

from __future__ import annotations

import warnings

from polyadapt.hookspecs import hookimpl
from polyadapt.lineage.provenance import silence_peft_provenance_warning
from polyadapt.types import Task

POLYADAPT_API = ">=1,<2"

# peft 0.21 calls a transformers 5 method that was renamed; the warning says nothing to users.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
# peft ignores (and warns about) the provenance block polyadapt adds to adapter_config.json.
silence_peft_provenance_warning()

TASK = Task(
    name="text-generation",
    modality="text",
    description="Causal LM on plain text, instruction pairs or chat (any AutoModelForCausalLM; GGUF too)",
    default_base="HuggingFaceTB/SmolLM2-135M-Instruct",
)


@hookimpl
def polyadapt_tasks():
    """Declare the text-generation task."""
    return [TASK]


@hookimpl
def polyadapt_adapt(run):
    """Train a LoRA adapter on the run's text data with the shared trainer."""
    from polyadapt_text.adapt import adapt

    return adapt(run)


@hookimpl
def polyadapt_evaluate(run, adapter):
    """Perplexity base vs adapted on held-out domain text and general text, plus samples."""
    from polyadapt_text.evaluate import evaluate

    return evaluate(run, adapter)


@hookimpl
def polyadapt_serve(spec):
    """Load the base once and serve completions and chat with per-request adapters."""
    from polyadapt_text.serve import TextServable

    return TextServable(spec)
