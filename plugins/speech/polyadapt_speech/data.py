"""How a speech run's clips become model inputs, and the loss the shared trainer takes.

The core reads and governs the clips (:meth:`polyadapt_speech.task.SpeechRecognitionTask.load_dataset`
through ``run.admit``: licence, per-record consent, PII in transcripts) before any sample
is read here. An example is a clip's log-mel input and the token sequence
``<|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|> transcript <|endoftext|>``;
the loss is taken on the transcript tokens and the end token only (teacher forcing).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from polyadapt.modalities.audio import load_waveform
from polyadapt_speech.model import log_mel, record_language, tokenizer_for
from polyadapt_speech.options import SpecAugmentOptions, SpeechOptions

IGNORE = -100


def prefix_tokens(model: Any, language: str, task: str) -> list[int]:
    """The start-of-transcript sequence without timestamps for ``language`` and ``task``."""
    return list(tokenizer_for(model, language, task).sot_sequence_including_notimestamps)


def transcript_tokens(model: Any, text: str, language: str, task: str) -> tuple[list[int], int]:
    """(prefix + transcript + end-of-text token ids cut to the text context, prefix length)."""
    tokenizer = tokenizer_for(model, language, task)
    prefix = prefix_tokens(model, language, task)
    body = tokenizer.encode(" " + text.strip())
    tokens = (prefix + body)[: model.dims.n_text_ctx] + [tokenizer.eot]
    return tokens[: model.dims.n_text_ctx + 1], len(prefix)


def build_examples(model: Any, records: list[dict[str, Any]], options: SpeechOptions) -> list[dict[str, Any]]:
    """One example per record: its log-mel input and its token sequence."""
    examples = []
    for record in records:
        language = record_language(record, options)
        tokens, prefix = transcript_tokens(model, record["text"], language, options.task)
        examples.append({"mel": log_mel(load_waveform(record), model), "tokens": tokens, "prefix": prefix})
    return examples


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the mels; pad the tokens; targets only after each start-of-transcript sequence."""
    length = max(len(e["tokens"]) for e in examples) - 1
    inputs = torch.zeros(len(examples), length, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        tokens = torch.tensor(example["tokens"], dtype=torch.long)
        n = len(tokens) - 1
        inputs[row, :n] = tokens[:-1]
        inputs[row, n:] = tokens[-1]  # pad with end-of-text; never a target
        labels[row, :n] = tokens[1:]
        labels[row, : example["prefix"] - 1] = IGNORE
    items = int((labels != IGNORE).sum())
    return {
        "mel": torch.stack([e["mel"] for e in examples]),
        "tokens": inputs,
        "labels": labels,
        "num_items": items,
        "num_tokens": items,
    }


def spec_augment(mel: torch.Tensor, settings: SpecAugmentOptions) -> torch.Tensor:
    """``mel`` (batch, n_mels, frames) with random frequency bands and time spans masked.

    Draws from torch's global generator, which the trainer checkpoints: a resumed run
    masks exactly as an uninterrupted one.
    """
    mel = mel.clone()
    batch, channels, frames = mel.shape
    fill = mel.mean(dim=(1, 2))
    for row in range(batch):
        for count, width, size, axis in (
            (settings.freq_masks, settings.freq_width, channels, 1),
            (settings.time_masks, settings.time_width, frames, 2),
        ):
            for _ in range(count):
                span = int(torch.randint(0, min(width, size) + 1, ()))
                start = int(torch.randint(0, max(size - span, 0) + 1, ()))
                if axis == 1:
                    mel[row, start : start + span, :] = fill[row]
                else:
                    mel[row, :, start : start + span] = fill[row]
    return mel


class WhisperLoss(torch.nn.Module):
    """Summed token cross-entropy of a (LoRA) Whisper, teacher-forced on the transcript.

    SpecAugment, when enabled, masks the input in training mode only: the trainer's
    evaluation (``model.eval()``) and the plugin's evaluation see clean audio.
    """

    def __init__(self, model: torch.nn.Module, augment: SpecAugmentOptions | None = None):
        super().__init__()
        self.model = model
        self.augment = augment if augment is not None and augment.enabled else None

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.augment is not None and self.training:
            mel = spec_augment(mel, self.augment)
        logits = self.model(mel, tokens)
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")


def summed_loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The trainer's loss: the summed cross-entropy over the batch's target tokens."""
    return model(batch["mel"], batch["tokens"], batch["labels"])
