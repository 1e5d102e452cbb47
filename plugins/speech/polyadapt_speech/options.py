"""The ``task_options`` of a speech-recognition run (pydantic only: imported at start-up)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SpecAugmentOptions(BaseModel):
    """SpecAugment-style masking of the log-mel input while training (never at evaluation).

    Each training example gets ``freq_masks`` bands of up to ``freq_width`` mel channels and
    ``time_masks`` spans of up to ``time_width`` frames (10 ms each) set to the mean.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    freq_masks: int = Field(2, ge=0)
    freq_width: int = Field(10, ge=1)
    time_masks: int = Field(2, ge=0)
    time_width: int = Field(40, ge=1)


class SpeechOptions(BaseModel):
    """What a speech-recognition run config's ``task_options:`` block may hold."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(
        None,
        description="Language code of the audio (en, de, ...); default: each record's "
        "'language', else English. English-only models (*.en) always use English",
    )
    task: Literal["transcribe", "translate"] = Field(
        "transcribe", description="transcribe (same language) or translate (to English); multilingual models only"
    )
    lora_on: Literal["encoder", "decoder", "both"] = Field(
        "both",
        description="Where LoRA goes. Measured on tiny.en: decoder-only learns the jargon "
        "but makes plain speech worse; encoder + decoder improved both",
    )
    glossary: list[str] = Field(
        default_factory=list, description="Domain terms whose exact recall is reported ('Solvanta rider')"
    )
    spec_augment: SpecAugmentOptions = Field(default_factory=SpecAugmentOptions)
    max_duration_s: float = Field(30.0, gt=0, le=30, description="Longer clips are quarantined")
    silence_dbfs: float = Field(-60.0, le=0, description="Clips quieter than this (RMS) are quarantined")
    max_decode_tokens: int | None = Field(
        None, ge=1, description="Most tokens greedy decoding writes per clip; default: half the text context"
    )
