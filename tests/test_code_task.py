"""The code plugin under plugin API 2.0: one task that extends the text task, declared by a
light entry module (no torch at start-up), with no routes of its own."""

from __future__ import annotations

import subprocess
import sys


def test_the_task_extends_the_text_task():
    import polyadapt_code
    from polyadapt.task import Task
    from polyadapt_code.options import CodeOptions
    from polyadapt_code.task import CodeGenerationTask
    from polyadapt_text.task import TextGenerationTask

    assert polyadapt_code.POLYADAPT_API == ">=2,<3"
    (task,) = polyadapt_code.polyadapt_tasks()
    assert isinstance(task, CodeGenerationTask) and isinstance(task, TextGenerationTask) and isinstance(task, Task)
    assert (task.name, task.modality, task.record_noun) == ("code-generation", "code", "files")
    assert task.options_model is CodeOptions and task.default_base == "HuggingFaceTB/SmolLM2-135M"
    # the base, LoRA and saving are the text task's; FIM is `suffix` on the core's completions
    for method in ("load_base", "lora_targets", "attach_lora", "save_adapter", "builtin_dataset"):
        assert getattr(CodeGenerationTask, method) is getattr(TextGenerationTask, method), method
    assert task.routes() == []
    assert not hasattr(polyadapt_code, "polyadapt_adapt") and not hasattr(polyadapt_code, "polyadapt_evaluate")


def test_the_entry_module_imports_nothing_heavy():
    code = "import sys, polyadapt_code; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
