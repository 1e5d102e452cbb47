"""polyadapt-text: LoRA adaptation of Hugging Face causal language models.

This entry module is imported when polyadapt starts, so it imports nothing heavy: the task
imports torch, transformers and peft inside its methods.
"""

from __future__ import annotations

import warnings

from polyadapt.hookspecs import hookimpl

from polyadapt_text.task import TextGenerationTask

POLYADAPT_API = ">=2,<3"

# peft 0.21 calls a transformers 5 method that was renamed; the warning says nothing to users.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

TASK = TextGenerationTask()


@hookimpl
def polyadapt_tasks():
    """Declare the text-generation task."""
    return [TASK]
