"""polyadapt-code: LoRA adaptation of code LLMs to a repository.

Registers :class:`~polyadapt_code.task.CodeGenerationTask`, which reuses the text task's
model loading, LoRA, loss, collator and serving, and adds what code needs: repository
ingestion (:mod:`polyadapt.modalities.code`), fill-in-the-middle samples, next-line and FIM
exact match, pass@k in a sandbox, and ``suffix`` at serving.

This entry module is imported when polyadapt starts, so it imports nothing heavy: the task
imports torch, transformers and peft inside its methods.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl

from polyadapt_code.task import CodeGenerationTask

POLYADAPT_API = ">=2,<3"

TASK = CodeGenerationTask()


@hookimpl
def polyadapt_tasks():
    """Declare the code-generation task."""
    return [TASK]
