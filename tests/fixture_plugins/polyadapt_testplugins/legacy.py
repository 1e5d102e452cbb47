"""A plugin written for plugin API 1.x: Task records and its own adapt and evaluate hooks.

polyadapt 2 must list it as broken with a one-line message pointing at the migration
guide, and never call it.
"""

import json

from polyadapt.hookspecs import hookimpl
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Task

POLYADAPT_API = ">=1,<2"


@hookimpl
def polyadapt_tasks():
    return [Task(name="legacy-task", modality="text")]


@hookimpl
def polyadapt_adapt(run):
    from polyadapt.modalities.text import load_text_dataset

    data = run.admit(load_text_dataset(run.config.data.train), role="train")
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "legacy.json").write_text(json.dumps({"records": len(data)}))
    return AdapterArtifact(path=run.adapter_dir, base_model=run.config.base_model.id)


@hookimpl
def polyadapt_evaluate(run, adapter):
    return EvalReport(rows=[MetricRow("domain", "loss", 2.0, 1.0, role="domain")])
