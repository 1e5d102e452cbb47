"""Serving classifiers: one loaded base, any number of adapters, chosen per request.

The adapters live in one peft model (``load_adapter`` adds one, ``set_adapter`` picks it);
requests for the base run with the adapters disabled, that is with the base's own random
head (useful only for comparison). Adapters with a different number of classes than the
first cannot share its head, so each class count gets its own copy of the base.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from polyadapt.config import BaseModelConfig
from polyadapt.errors import PolyadaptError
from polyadapt.types import ServeSpec
from polyadapt_classification.api import ClassificationRequest, ClassificationResult
from polyadapt_classification.task import read_labels


class ClassificationServable:
    """A base model that answers :meth:`classify` with the adapter each request names."""

    def __init__(self, spec: ServeSpec):
        from polyadapt_classification.model import load_tokenizer

        self.base_name = spec.base_name
        config = spec.config
        self._base_config = config.base_model if config is not None else BaseModelConfig(id=spec.base_model)
        self._seed = config.training.seed if config is not None else 0
        self.max_length = config.training.max_length if config is not None else 512
        self.tokenizer = load_tokenizer(self._base_config)
        #: number of classes -> the base with that many outputs (a PeftModel once it has adapters)
        self._models: dict[int, Any] = {}
        #: adapter name -> its classes
        self._labels: dict[str, list[str]] = {}
        #: the classes the base answers with: those of the served adapters, else of the config
        self.base_labels: list[str] | None = None
        for path in spec.adapters.values():
            with contextlib.suppress(PolyadaptError):
                self.base_labels = read_labels(path)
                break
        if self.base_labels is None and config is not None and config.task_options.get("labels"):
            self.base_labels = [str(label) for label in config.task_options["labels"]]

    def _model(self, num_labels: int, labels: list[str]) -> Any:
        """The base with ``num_labels`` outputs, loaded on first use."""
        if num_labels not in self._models:
            from polyadapt.lora import inference_device
            from polyadapt_classification.model import load_classifier

            model = load_classifier(self._base_config, labels, self.tokenizer.pad_token_id, seed=self._seed)
            self._models[num_labels] = model.to(inference_device()).eval()
        return self._models[num_labels]

    def adapter_names(self) -> list[str]:
        """The adapters loaded so far."""
        return list(self._labels)

    def load_adapter(self, name: str, path: Path) -> None:
        """Add the adapter at ``path`` under ``name`` (no-op when it is loaded)."""
        if name in self._labels:
            return
        from peft import PeftModel

        labels = read_labels(path)
        model = self._model(len(labels), labels)
        if isinstance(model, PeftModel):
            model.load_adapter(str(path), adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
            self._models[len(labels)] = model
        model.eval()
        self._labels[name] = labels

    def classify(self, requests: list[ClassificationRequest]) -> list[ClassificationResult]:
        """The class of each request's text, by the adapter it names (one forward pass per adapter)."""
        from peft import PeftModel

        from polyadapt_classification.model import predict

        groups: dict[str | None, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[request.adapter].append(index)
        results: list[ClassificationResult | None] = [None] * len(requests)
        for adapter, indices in groups.items():
            if adapter is None:
                if self.base_labels is None:
                    raise PolyadaptError(
                        f"the base {self.base_name!r} has no classes until an adapter is served "
                        f"with it; ask for {self.base_name}:ADAPTER"
                    )
                labels = self.base_labels
                model = self._model(len(labels), labels)
                scope = model.disable_adapter() if isinstance(model, PeftModel) else contextlib.nullcontext()
            else:
                labels = self._labels[adapter]
                model = self._models[len(labels)]
                model.set_adapter(adapter)
                scope = contextlib.nullcontext()
            with scope:
                probs = predict(model, self.tokenizer, [requests[i].text for i in indices], self.max_length)
            for index, row in zip(indices, probs.tolist()):
                best = max(range(len(labels)), key=row.__getitem__)
                results[index] = ClassificationResult(
                    label=labels[best], score=row[best], scores=dict(zip(labels, row))
                )
        return results  # type: ignore[return-value]
