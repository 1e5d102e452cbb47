"""The requests and results of the speech servable's ``transcribe`` batch method.

``/v1/audio/transcriptions`` (:mod:`polyadapt_speech.routes`) builds one
:class:`TranscriptionRequest` per upload and submits it, micro-batched with the other
uploads for the same base, to ``SpeechServable.transcribe``, which answers each with a
:class:`TranscriptionResult`. Plain dataclasses: importing this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TranscriptionRequest:
    """One audio file to transcribe; ``adapter`` None is the base.

    ``audio`` holds the uploaded file's bytes as sent (any format the servable decodes);
    ``prompt`` is OpenAI's optional text to condition on. ``timestamps`` asks for segments
    with real start and end times (the ``verbose_json``, ``srt`` and ``vtt`` formats);
    without it the servable may decode faster and give coarser segments.
    """

    audio: bytes
    adapter: str | None = None
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    filename: str = ""
    timestamps: bool = False


@dataclass
class TranscriptionResult:
    """The transcript of one :class:`TranscriptionRequest`.

    ``segments`` are ``{"id", "start", "end", "text"}`` dicts (seconds) for the
    ``verbose_json``, ``srt`` and ``vtt`` formats.
    """

    text: str
    language: str
    duration_s: float
    segments: list[dict[str, Any]] = field(default_factory=list)
