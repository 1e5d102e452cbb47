"""Greedy decoding with whisper's own decoder, shared by evaluation and serving.

Without timestamps by default (what adapters are trained on, and faster); with
``timestamps=True`` the tokens hold whisper's timestamp tokens for
:func:`polyadapt_speech.segments.parse_window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from polyadapt_speech.model import log_mel


@dataclass
class Transcript:
    """One greedy transcript: the text (no special or timestamp tokens), its tokens (with
    timestamp tokens when decoded with timestamps) and language."""

    text: str
    tokens: list[int]
    language: str
    avg_logprob: float


@torch.no_grad()
def transcribe_mels(
    whisper_model: Any,
    mels: torch.Tensor,
    *,
    language: str = "en",
    task: str = "transcribe",
    max_tokens: int | None = None,
    prompt: str | None = None,
    timestamps: bool = False,
) -> list[Any]:
    """Greedy :class:`Transcript` s of a batch of log-mel inputs.

    ``whisper_model`` is a :class:`whisper.model.Whisper` (LoRA layers in place, the active
    adapter applied). English-only models always decode English. ``timestamps`` decodes
    with whisper's timestamp tokens (``max_tokens`` then counts them too).
    """
    import whisper

    from polyadapt_speech.model import tokenizer_for

    if not whisper_model.is_multilingual:
        language, task = "en", "transcribe"
    options = whisper.DecodingOptions(
        task=task,
        language=language,
        temperature=0.0,
        without_timestamps=not timestamps,
        fp16=False,
        sample_len=max_tokens,
        prompt=prompt or None,
    )
    results = whisper.decode(whisper_model, mels.to(next(whisper_model.parameters()).device), options)
    results = results if isinstance(results, list) else [results]
    tokenizer = tokenizer_for(whisper_model, language, task)
    # whisper's own text keeps special tokens a model may emit (<|notimestamps|>...); drop them
    return [
        Transcript(
            text=tokenizer.decode([t for t in r.tokens if t < tokenizer.eot]).strip(),
            tokens=list(r.tokens),
            language=r.language,
            avg_logprob=float(r.avg_logprob),
        )
        for r in results
    ]


def transcribe_samples(whisper_model: Any, samples: list[Any], **options: Any) -> list[Any]:
    """:func:`transcribe_mels` of 16 kHz sample arrays."""
    mels = torch.stack([log_mel(s, whisper_model) for s in samples])
    return transcribe_mels(whisper_model, mels, **options)


__all__ = ["Transcript", "transcribe_mels", "transcribe_samples"]
