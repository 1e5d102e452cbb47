"""Serving Whisper: one loaded base, peft adapters switched per request, greedy transcripts.

Requests of a batch are grouped by adapter (and language); each group is decoded in one
batch with that adapter active (``set_adapter``) or with adapters disabled for the base.
Audio longer than the model's window (30 s) is cut into consecutive windows, each one a
segment of the answer.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError
from polyadapt.types import GenerationRequest, GenerationResult, ServeSpec, TranscriptionRequest, TranscriptionResult
from polyadapt_speech.model import HOP_LENGTH, check_loadable, device, load_whisper, n_frames, whisper_of
from polyadapt_speech.options import SpeechOptions
from polyadapt_speech.transcribe import transcribe_samples

SAMPLE_RATE = 16_000


class SpeechServable:
    """A Whisper base with LoRA adapters, answering :class:`TranscriptionRequest` batches."""

    def __init__(self, spec: ServeSpec):
        self.base_name = spec.base_name
        config = spec.config
        self.options = SpeechOptions.model_validate(config.task_options if config is not None else {})
        if config is not None:
            base_config = config.base_model
        else:
            from polyadapt.config import BaseModelConfig

            base_config = BaseModelConfig(id=spec.base_model)
        self.whisper = load_whisper(base_config).to(device())
        self.peft: Any = None
        self.lock = threading.Lock()
        self.window = n_frames(self.whisper) * HOP_LENGTH  # samples per decoding window
        for name, path in spec.adapters.items():
            self.load_adapter(name, path)

    # -- adapters -----------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Load the peft adapter at ``path`` under ``name`` (no-op if loaded)."""
        from peft import PeftModel

        with self.lock:
            if name in self.adapter_names():
                return
            check_loadable(Path(path))
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.whisper, str(path), adapter_name=name).eval()
            else:
                self.peft.load_adapter(str(path), adapter_name=name)
            self.peft.to(device())

    def adapter_names(self) -> list[str]:
        return [] if self.peft is None else list(self.peft.peft_config)

    # -- answering ------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        raise PolyadaptError(f"{self.base_name} is a speech model: send audio to /v1/audio/transcriptions")

    def _model_for(self, adapter: str | None):
        """(whisper module, context manager) with ``adapter`` active, or adapters off."""
        import contextlib

        if self.peft is None:
            if adapter is not None:
                raise PolyadaptError(f"adapter {adapter!r} is not loaded on {self.base_name!r}")
            return self.whisper, contextlib.nullcontext()
        if adapter is None:
            return whisper_of(self.peft), self.peft.disable_adapter()
        if adapter not in self.peft.peft_config:
            raise PolyadaptError(f"adapter {adapter!r} is not loaded on {self.base_name!r}")
        self.peft.set_adapter(adapter)
        return whisper_of(self.peft), contextlib.nullcontext()

    def transcribe(self, requests: list[TranscriptionRequest]) -> list[TranscriptionResult]:
        """Greedy transcripts of ``requests``, each with its own adapter (or the base)."""
        from polyadapt.modalities.audio import AudioError, decode_audio

        audio = []
        for request in requests:
            try:
                audio.append(decode_audio(request.audio))
            except AudioError as exc:
                raise PolyadaptError(f"cannot read the audio file {request.filename or ''}: {exc}".replace("  ", " ")) from None
        results: list[TranscriptionResult | None] = [None] * len(requests)
        groups: dict[tuple[str | None, str, str | None], list[int]] = {}
        for index, request in enumerate(requests):
            language = request.language or self.options.language or "en"
            groups.setdefault((request.adapter, language, request.prompt), []).append(index)
        with self.lock:
            for (adapter, language, prompt), indices in groups.items():
                model, context = self._model_for(adapter)
                with context:
                    windows = [(i, start) for i in indices for start in range(0, max(len(audio[i]), 1), self.window)]
                    decoded = transcribe_samples(
                        model, [audio[i][start:start + self.window] for i, start in windows], language=language,
                        task=self.options.task, max_tokens=self.options.max_decode_tokens, prompt=prompt,
                    )
                segments: dict[int, list[dict[str, Any]]] = {i: [] for i in indices}
                for (i, start), result in zip(windows, decoded):
                    end = min(len(audio[i]), start + self.window)
                    segments[i].append({"id": len(segments[i]), "start": round(start / SAMPLE_RATE, 3),
                                        "end": round(end / SAMPLE_RATE, 3), "text": result.text})
                for i in indices:
                    text = " ".join(s["text"] for s in segments[i] if s["text"]).strip()
                    results[i] = TranscriptionResult(text=text, language=decoded[0].language if decoded else language,
                                                     duration_s=round(len(audio[i]) / SAMPLE_RATE, 3),
                                                     segments=segments[i])
        return results  # type: ignore[return-value]
