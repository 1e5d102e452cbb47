"""A plugin API 2 task with the smallest answers, for tests of the plugin machinery.

:class:`TinyTask` has no base model, trains one number with the shared trainer, saves it as
one safetensors file, reports a fixed metric and serves a base that only lists adapters;
``calls`` records which of its methods the core asked. :class:`TinyPlugin` offers one.
torch is imported inside the methods.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt.task import Task
from polyadapt.types import EvalReport, MetricRow


class TinyTask(Task):
    """``name`` trains one number towards 1; the adapter wins its fixed report."""

    def __init__(self, name: str, **declared):
        super().__init__(name=name, **declared)
        self.calls: list[str] = []

    def load_base(self, run):
        self.calls.append("load_base")
        return None

    def attach_lora(self, run, base):
        import torch

        model = torch.nn.Module()
        model.scale = torch.nn.Parameter(torch.zeros(()))
        return model

    def training_job(self, run, base, model, data):
        import torch

        from polyadapt.training import TrainingJob

        self.calls.append("training_job")
        return TrainingJob(
            model=model,
            train_data=[record["text"] for record in data.train],
            collate=lambda texts: {"x": torch.ones(len(texts)), "num_items": len(texts)},
            loss=lambda module, batch: ((module.scale - 1.0) ** 2 * batch["x"]).sum(),
        )

    def save_adapter(self, run, base, model, folder):
        from safetensors.torch import save_file

        save_file({"scale": model.scale.detach().cpu().reshape(1)}, str(folder / "adapter_model.safetensors"))

    def evaluate(self, run, adapter, data):
        self.calls.append("evaluate")
        return EvalReport(rows=[MetricRow("domain", "loss", 2.0, 1.0, role="domain")])

    def servable(self, spec):
        self.calls.append("servable")
        return AdapterList(spec.base_name)


class AdapterList:
    """A servable that loads nothing and answers nothing: it only lists its adapters."""

    def __init__(self, base_name: str):
        self.base_name, self.loaded = base_name, {}

    def load_adapter(self, name, path):
        self.loaded[name] = path

    def adapter_names(self):
        return list(self.loaded)


class TinyPlugin:
    """A plugin offering one :class:`TinyTask` (``task``, by default ``<name>-task``)."""

    def __init__(self, name: str, task: Task | None = None):
        self.name = name
        self.task = task or TinyTask(f"{name}-task")

    @hookimpl
    def polyadapt_tasks(self):
        return [self.task]
