"""polyadapt-code: LoRA adaptation of code LLMs to a repository.

Reuses the text plugin's model loading, LoRA, loss, collator and serving, and adds what
code needs: repository ingestion (:mod:`polyadapt.modalities.code`), fill-in-the-middle
samples, next-line and FIM exact match, pass@k in a sandbox, and ``suffix`` at serving.

This entry module is imported when polyadapt starts, so it imports nothing heavy: torch,
transformers and peft are imported inside the hooks.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt.types import Task

from polyadapt_code.options import CodeOptions

POLYADAPT_API = ">=1,<2"

TASK = Task(
    name="code-generation",
    modality="code",
    description="Code LM on a repository (folder or git revision): causal + fill-in-the-middle, "
    "next-line/FIM exact match, sandboxed pass@k",
    default_base="HuggingFaceTB/SmolLM2-135M",
    options_model=CodeOptions,
)


@hookimpl
def polyadapt_tasks():
    """Declare the code-generation task."""
    return [TASK]


@hookimpl
def polyadapt_adapt(run):
    """Ingest and govern the repository, train a LoRA adapter with the shared trainer."""
    from polyadapt_code.adapt import adapt

    return adapt(run)


@hookimpl
def polyadapt_evaluate(run, adapter):
    """Held-out perplexity, next-line and FIM exact match, general text, pass@k."""
    from polyadapt_code.evaluate import evaluate

    return evaluate(run, adapter)


@hookimpl
def polyadapt_serve(spec):
    """Load the base once and serve completions (with ``suffix`` for FIM) per adapter."""
    from polyadapt_code.serve import CodeServable

    return CodeServable(spec)
