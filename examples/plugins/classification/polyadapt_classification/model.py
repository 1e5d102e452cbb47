"""The classifier: loading the base, the training examples and loss, evaluation.

The base is whatever ``AutoModelForSequenceClassification`` makes of ``base_model.id``: a
causal LM (Llama, Qwen, SmolLM2...) gets a classification head on its last token, an
encoder (BERT...) on its first. The head is new and random; peft trains a copy of it next
to the LoRA weights and saves it in the adapter, so the adapter alone makes the classifier.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from polyadapt.config import BaseModelConfig
from polyadapt.errors import ConfigError, DataError
from polyadapt.modalities.records import RunData
from polyadapt.training import TrainingJob
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run
from polyadapt_classification.metrics import accuracy, macro_f1
from polyadapt_classification.task import read_labels

#: Texts per forward pass when evaluating and serving.
PREDICT_BATCH = 16


@dataclass
class ClassifierBase:
    """The frozen base of a run: the classifier model, its tokenizer and its classes."""

    model: Any
    tokenizer: Any
    labels: list[str]


# -- labels --------------------------------------------------------------------------------


def resolve_labels(options: Any, data: RunData) -> list[str]:
    """The run's classes: ``task_options.labels``, else the sorted labels of its data.

    :raises DataError: a record's label is not one of them, or there are fewer than two.
    """
    field = options.label_field
    sets = [("training", data.train), ("replay", data.replay), ("held-out", data.heldout), ("general", data.general)]
    found = sorted({record[field] for _, records in sets for record in records})
    labels = list(options.labels or found)
    if len(labels) < 2:
        raise DataError(
            f"text classification needs at least two classes, but every record's {field!r} is "
            f"{found[0]!r}; add records of other classes"
        )
    known = set(labels)
    for name, records in sets:
        unknown = Counter(record[field] for record in records if record[field] not in known)
        if unknown:
            shown = ", ".join(f"{label!r} ({count})" for label, count in sorted(unknown.items()))
            raise DataError(
                f"{sum(unknown.values())} {name} record(s) have a {field!r} that is not in "
                f"task_options.labels ({', '.join(labels)}): {shown}; add it to task_options.labels "
                "or remove those records"
            )
    return labels


# -- the base ------------------------------------------------------------------------------


def weight_dtype(name: str) -> torch.dtype:
    """The torch dtype of ``base_model.dtype``; ``auto`` is bf16 where bf16 is fast."""
    if name == "auto":
        from polyadapt.training.precision import fast_weight_dtype

        return fast_weight_dtype()
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers reports the new classification head as missing weights; it is meant to be."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_tokenizer(config: BaseModelConfig) -> Any:
    """The base's tokenizer (``base_model.tokenizer`` when given), with a pad token: EOS when
    it has none."""
    from transformers import AutoTokenizer

    where = config.tokenizer or config.id
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            where, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"base_model.id: cannot load the tokenizer of {where!r}: {exc}") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(
                f"base_model.id: the tokenizer of {where!r} has neither a pad nor an EOS token; "
                "give one with a pad token in base_model.tokenizer"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_classifier(config: BaseModelConfig, labels: list[str], pad_token_id: int, *, seed: int | None = None) -> Any:
    """``base_model`` as a sequence classifier with one output per label (the head random,
    drawn from ``seed`` when given, without touching the global random state)."""
    from transformers import AutoModelForSequenceClassification

    if config.gguf_file or config.id.endswith(".gguf"):
        raise ConfigError(
            f"base_model.id: {config.id!r} is a GGUF file; text-classification needs a "
            "transformers model folder or hub id"
        )
    with torch.random.fork_rng(devices=[]), _quiet_transformers():
        if seed is not None:
            torch.manual_seed(seed)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                config.id,
                revision=config.revision,
                dtype=weight_dtype(config.dtype),
                trust_remote_code=config.trust_remote_code,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"base_model.id: cannot load {config.id!r} as a sequence classifier: {exc}. Give a local "
                "folder or hub id of a model AutoModelForSequenceClassification knows (Llama, Qwen, BERT...)"
            ) from None
    model.config.pad_token_id = pad_token_id
    return model


def load_base(run: Run) -> ClassifierBase:
    """The run's base: its classes from the (governed) data, the model and the tokenizer.

    The random head is drawn from ``training.seed``, as evaluation and serving draw it: the
    base they compare with is the one training started from.
    """
    from polyadapt.steps import run_data

    labels = resolve_labels(run.options, run_data(run))
    config = run.config.base_model
    tokenizer = load_tokenizer(config)
    model = load_classifier(config, labels, tokenizer.pad_token_id, seed=run.config.training.seed)
    return ClassifierBase(model=model, tokenizer=tokenizer, labels=labels)


# -- training ------------------------------------------------------------------------------


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, cut to ``max_length`` tokens."""
    return [list(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]


class Collator:
    """Pads a list of ``{"input_ids", "label"}`` examples into one batch.

    ``num_items`` is the number of texts (one loss term each), ``num_tokens`` the real
    (unpadded) tokens.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(example["input_ids"]) for example in examples)
        ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            length = len(example["input_ids"])
            ids[row, :length] = torch.tensor(example["input_ids"], dtype=torch.long)
            mask[row, :length] = 1
        labels = torch.tensor([example["label"] for example in examples], dtype=torch.long)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "num_items": len(examples),
            "num_tokens": int(mask.sum()),
        }


def summed_loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The cross-entropy summed over the batch's texts (the trainer divides by ``num_items``)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.float(), batch["labels"], reduction="sum")


def examples(
    run: Run, tokenizer: Any, records: list[dict[str, Any]], labels: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """(one ``{"input_ids", "label"}`` example per record, how many texts were cut to
    ``training.max_length`` tokens)."""
    options, max_length = run.options, run.config.training.max_length
    index = {label: i for i, label in enumerate(labels)}
    ids = encode(tokenizer, [record[options.text_field] for record in records], max_length + 1)
    built = [
        {"input_ids": tokens[:max_length], "label": index[record[options.label_field]]}
        for tokens, record in zip(ids, records)
        if tokens
    ]
    return built, sum(len(tokens) > max_length for tokens in ids)


def training_job(run: Run, base: ClassifierBase, model: Any, data: RunData) -> TrainingJob:
    """The examples (training and replay records), the collate and the loss for the trainer."""
    train, truncated = examples(run, base.tokenizer, data.train + data.replay, base.labels)
    heldout, _ = examples(run, base.tokenizer, data.heldout, base.labels)
    counts = Counter(base.labels[example["label"]] for example in train)
    facts = {
        "train_examples": len(train),
        "labels": base.labels,
        "examples_per_label": {label: counts.get(label, 0) for label in base.labels},
        "truncated": truncated,
    }
    return TrainingJob(
        model=model,
        train_data=train,
        collate=Collator(base.tokenizer.pad_token_id),
        loss=summed_loss,
        eval_data=heldout or None,
        facts=facts,
    )


# -- prediction and evaluation -------------------------------------------------------------


@torch.no_grad()
def predict(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int) -> torch.Tensor:
    """Class probabilities of each text, ``[len(texts), num_labels]`` on the CPU."""
    device = next(model.parameters()).device
    collate = Collator(tokenizer.pad_token_id)
    ids = encode(tokenizer, texts, max_length)
    out = []
    for start in range(0, len(ids), PREDICT_BATCH):
        batch = collate(
            [
                {"input_ids": tokens or [tokenizer.pad_token_id], "label": 0}
                for tokens in ids[start : start + PREDICT_BATCH]
            ]
        )
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        out.append(torch.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.empty(0)


def load_adapted(config: BaseModelConfig, adapter: Any, *, seed: int | None = None) -> tuple[Any, Any, list[str]]:
    """(the base with the adapter at ``adapter`` in peft, its tokenizer, its classes), for inference."""
    from peft import PeftModel

    from polyadapt.lora import inference_device

    labels = read_labels(adapter)
    tokenizer = load_tokenizer(config)
    base = load_classifier(config, labels, tokenizer.pad_token_id, seed=seed)
    model = PeftModel.from_pretrained(base, str(adapter))
    return model.to(inference_device()).eval(), tokenizer, labels


def evaluate(run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
    """Accuracy and macro-F1, base (its random head) against adapted, on the held-out set and
    the general set when the run has one; a few held-out texts (``prompt``) with their
    ``gold`` label, the ``base`` and ``adapted`` predictions and the adapted one's probability."""
    options, config = run.options, run.config
    model, tokenizer, labels = load_adapted(config.base_model, adapter.path, seed=config.training.seed)
    max_length = config.training.max_length
    rows: list[MetricRow] = []
    samples: list[dict[str, Any]] = []
    for name, role, records in (("domain (held-out)", "domain", data.heldout), ("general", "general", data.general)):
        if not records:
            continue
        texts = [record[options.text_field] for record in records]
        gold = [record[options.label_field] for record in records]
        with model.disable_adapter():
            base_pred = [labels[i] for i in predict(model, tokenizer, texts, max_length).argmax(-1).tolist()]
        probs = predict(model, tokenizer, texts, max_length)
        adapted_pred = [labels[i] for i in probs.argmax(-1).tolist()]
        rows.append(
            MetricRow(
                name,
                "accuracy",
                accuracy(gold, base_pred),
                accuracy(gold, adapted_pred),
                lower_is_better=False,
                role=role,
            )
        )
        rows.append(
            MetricRow(
                name,
                "macro_f1",
                macro_f1(gold, base_pred),
                macro_f1(gold, adapted_pred),
                lower_is_better=False,
                role=role,
            )
        )
        if role == "domain":
            # the keys of every task's samples (the CLI shows prompt, base, adapted), plus the gold label
            samples = [
                {"prompt": text, "gold": g, "base": b, "adapted": p, "score": round(float(row.max()), 4)}
                for text, g, b, p, row in zip(texts, gold, base_pred, adapted_pred, probs)
            ]
            samples = samples[: config.evaluation.num_samples]
    return EvalReport(rows=rows, samples=samples)
