"""A working plugin: one task whose adapter is a JSON file."""

import json
import os
import time

import numpy
from safetensors.numpy import save_file

from polyadapt.hookspecs import hookimpl
from polyadapt.modalities.text import load_text_dataset
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Task

POLYADAPT_API = ">=1,<2"


@hookimpl
def polyadapt_tasks():
    return [Task(name="echo", modality="text", description="writes its config as the adapter")]


@hookimpl
def polyadapt_adapt(run):
    # Like every plugin, it trains only on what the governance gate lets through.
    data = run.admit(load_text_dataset(run.config.data.train), role="train")
    time.sleep(float(os.environ.get("ECHO_SLEEP", "0")))  # a long "training" for signal tests
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "echo.json").write_text(json.dumps({"task": run.task.name, "records": len(data)}))
    # adapters are safetensors, so that lineage can hash and stamp them
    save_file({"scale": numpy.full((1,), float(len(data)), dtype=numpy.float32)},
              str(run.adapter_dir / "adapter_model.safetensors"))
    return AdapterArtifact(path=run.adapter_dir, base_model=run.config.base_model.id)


@hookimpl
def polyadapt_evaluate(run, adapter):
    return EvalReport(rows=[MetricRow("domain", "loss", 2.0, 1.0, role="domain")])
