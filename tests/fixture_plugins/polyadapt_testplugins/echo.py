"""A working plugin: one task whose adapter is a JSON file."""

import json

from polyadapt.hookspecs import hookimpl
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Task

POLYADAPT_API = ">=1,<2"


@hookimpl
def polyadapt_tasks():
    return [Task(name="echo", modality="text", description="writes its config as the adapter")]


@hookimpl
def polyadapt_adapt(run):
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "echo.json").write_text(json.dumps({"task": run.task.name}))
    return AdapterArtifact(path=run.adapter_dir, base_model=run.config.base_model.id)


@hookimpl
def polyadapt_evaluate(run, adapter):
    return EvalReport(rows=[MetricRow("domain", "loss", 2.0, 1.0)])
