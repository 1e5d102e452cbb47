"""The ``text-classification`` task: what polyadapt's shared run asks a classifier.

The core owns the run (governance, data files, LoRA, the trainer, the atomic save, the
registry, serving); this task says only what classification knows: records are a text and
a label, the base is an ``AutoModelForSequenceClassification`` with one output per label,
the loss is cross-entropy, the metrics are accuracy and macro-F1, and the server answers
``POST /v1/classifications``. This module is imported when polyadapt starts, so it imports
no torch: the methods import :mod:`polyadapt_classification.model` and the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from polyadapt.task import Task

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.serving.routes import Route
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, ServeSpec

#: The file beside the adapter's weights that names its classes, in output order.
LABELS_FILE = "labels.json"


class ClassificationOptions(BaseModel):
    """``task_options`` of a ``text-classification`` run."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] | None = Field(
        None,
        description="The classes, in the order of the classifier's outputs; "
        "null: the sorted labels found in the run's data",
    )
    text_field: str = Field("text", min_length=1, description="The record field holding the text to classify")
    label_field: str = Field("label", min_length=1, description="The record field holding its class")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        labels = [label.strip() for label in value]
        if any(not label for label in labels):
            raise ValueError("a label must not be blank")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be distinct; repeated: {', '.join(repeated)}")
        if len(labels) < 2:
            raise ValueError("a classifier needs at least two labels")
        return labels

    @model_validator(mode="after")
    def _different_fields(self) -> ClassificationOptions:
        if self.text_field == self.label_field:
            raise ValueError(f"text_field and label_field both name {self.text_field!r}; they must differ")
        return self


def read_labels(adapter: Path | str) -> list[str]:
    """The classes of the adapter in folder ``adapter``, in the order of its outputs."""
    from polyadapt.errors import PolyadaptError

    path = Path(adapter) / LABELS_FILE
    try:
        labels = json.loads(path.read_text())["labels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PolyadaptError(
            f"{adapter}: not a text-classification adapter ({LABELS_FILE} is missing or unreadable: {exc})"
        ) from None
    return [str(label) for label in labels]


class TextClassificationTask(Task):
    """Sort texts into classes: LoRA and a classification head on a pretrained model."""

    name = "text-classification"
    modality = "text"
    description = "Sort texts into labelled classes (any AutoModelForSequenceClassification)"
    default_base = "HuggingFaceTB/SmolLM2-135M"
    options_model = ClassificationOptions
    record_noun = "texts"

    def load_dataset(self, run: Run, path: Path, role: str) -> Dataset:
        """Labelled records (:func:`polyadapt.modalities.labelled.load_labelled_dataset`) with
        the fields ``task_options`` names."""
        from polyadapt.modalities.labelled import load_labelled_dataset

        options = run.options
        return load_labelled_dataset(path, run.config.data.format, options.text_field, options.label_field)

    def load_base(self, run: Run) -> Any:
        """The base as a sequence classifier with one output per label, and its tokenizer."""
        from polyadapt_classification.model import load_base

        return load_base(run)

    def attach_lora(self, run: Run, base: Any) -> Any:
        """LoRA through peft as a ``SEQ_CLS`` model: peft also trains (and saves) a copy of the
        classification head (``modules_to_save``), which the base has only at random."""
        from polyadapt.lora import attach_lora

        return attach_lora(self.lora_module(base), run.config.lora, self.lora_targets(run, base), task_type="SEQ_CLS")

    def training_job(self, run: Run, base: Any, model: Any, data: RunData) -> TrainingJob:
        """Tokenised texts with their label ids, padded batches and the summed cross-entropy."""
        from polyadapt_classification.model import training_job

        return training_job(run, base, model, data)

    def save_adapter(self, run: Run, base: Any, model: Any, folder: Path) -> None:
        """The core's save (peft weights, head included, and the tokenizer) plus ``labels.json``:
        the class of each output, which the model's weights do not name."""
        super().save_adapter(run, base, model, folder)
        options = run.options
        (folder / LABELS_FILE).write_text(
            json.dumps(
                {"labels": base.labels, "text_field": options.text_field, "label_field": options.label_field}, indent=2
            )
            + "\n"
        )

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """Accuracy and macro-F1 of the base and the adapted classifier on the held-out set
        (and the general set, if the run has one), plus a few predictions."""
        from polyadapt_classification.model import evaluate

        return evaluate(run, adapter, data)

    def servable(self, spec: ServeSpec) -> Any:
        """The base loaded once, answering ``classify`` with any of its adapters."""
        from polyadapt_classification.serve import ClassificationServable

        return ClassificationServable(spec)

    def routes(self) -> list[Route]:
        """``POST /v1/classifications``."""
        from polyadapt_classification.routes import ROUTES

        return list(ROUTES)

    def tiny_models(self) -> dict[str, tuple[Callable[[Path], Path], str]]:
        """``tiny_base_model("text-classification")``: the demo's tiny base (a random Llama
        whose tokenizer ends every text with a summary token), built offline."""
        from polyadapt_classification.demo import build_tiny_base

        return {"text-classification": (build_tiny_base, "tiny-classifier")}
