"""A working plugin (plugin API 2): one task whose "model" is a single number.

The core runs the whole pipeline for it (governance, data files, the shared trainer, the
atomic save, evaluation); the task answers with the smallest things that fit: a base that
is nothing, a one-parameter torch module trained for a step or so, an adapter of two files.
``ECHO_SLEEP`` (seconds) makes "training" slow, after the data is admitted, for signal tests.
torch is imported inside the methods: ``polyadapt plugins`` must not import it.
"""

import json
import os
import time

from polyadapt.hookspecs import hookimpl
from polyadapt.task import Task
from polyadapt.types import EvalReport, MetricRow

POLYADAPT_API = ">=2,<3"


def _collate(examples):
    import torch

    return {"x": torch.tensor([float(len(example)) for example in examples]), "num_items": len(examples)}


def _loss(model, batch):
    return ((model.scale - 1.0) ** 2 * batch["x"]).sum()


class EchoTask(Task):
    """Trains one number; the adapter records the task and how many records it was given."""

    name = "echo"
    description = "writes its config as the adapter"

    def load_base(self, run):
        """The base is nothing at all."""
        return None

    def attach_lora(self, run, base):
        """A module with one trainable parameter."""
        import torch

        module = torch.nn.Module()
        module.scale = torch.nn.Parameter(torch.zeros(()))
        return module

    def training_job(self, run, base, model, data):
        """One example per record of text."""
        from polyadapt.training import TrainingJob

        time.sleep(float(os.environ.get("ECHO_SLEEP", "0")))  # a long "training" for signal tests
        return TrainingJob(
            model=model, train_data=[record["text"] for record in data.train], collate=_collate, loss=_loss
        )

    def save_adapter(self, run, base, model, folder):
        """``echo.json`` and the parameter as safetensors (lineage hashes and stamps those)."""
        from safetensors.torch import save_file

        (folder / "echo.json").write_text(json.dumps({"task": run.task.name, "records": len(run.data.train)}))
        scale = model.scale.detach().cpu().reshape(1).contiguous()
        save_file({"scale": scale}, str(folder / "adapter_model.safetensors"))

    def evaluate(self, run, adapter, data):
        """A fixed report in which the adapter wins."""
        return EvalReport(rows=[MetricRow("domain", "loss", 2.0, 1.0, role="domain")])


@hookimpl
def polyadapt_tasks():
    return [EchoTask()]
