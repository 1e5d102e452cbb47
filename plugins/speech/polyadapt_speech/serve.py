"""Serving Whisper: one loaded base, peft adapters switched per request, greedy transcripts.

Requests of a batch are grouped by adapter (and language, prompt, timestamps); each group
is decoded in one batch with that adapter active (``set_adapter``) or with adapters
disabled for the base.

Without timestamps (the ``json``/``text`` formats) audio longer than the model's window
(30 s) is cut into consecutive windows, each one a segment of the answer. With
``request.timestamps`` (``verbose_json``, ``srt``, ``vtt``) windows are decoded with
whisper's timestamp tokens and placed by whisper's seek (:mod:`polyadapt_speech.seek`), so
segments are the sentences the model marked, with their own start and end.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError
from polyadapt.lora import inference_device
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.types import ServeSpec
from polyadapt_speech.model import HOP_LENGTH, check_loadable, load_whisper, n_frames, whisper_of
from polyadapt_speech.options import SpeechOptions
from polyadapt_speech.seek import Window, seek_segments
from polyadapt_speech.transcribe import transcribe_samples
from polyadapt_speech.types import TranscriptionRequest, TranscriptionResult

SAMPLE_RATE = 16_000


class SpeechServable:
    """A Whisper base with LoRA adapters, answering :class:`TranscriptionRequest` batches.

    It has no ``generate``: the server answers text completions on it with a 400 (the
    speech-recognition task's route, ``/v1/audio/transcriptions``, calls :meth:`transcribe`).
    """

    def __init__(self, spec: ServeSpec):
        self.base_name = spec.base_name
        config = spec.config
        self.options = SpeechOptions.model_validate(config.task_options if config is not None else {})
        if config is not None:
            base_config = config.base_model
        else:
            from polyadapt.config import BaseModelConfig

            base_config = BaseModelConfig(id=spec.base_model)
        self.whisper = load_whisper(base_config).to(inference_device())
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
            with refusing_unsafe_pickles(path, what=f"adapter {name!r}"):
                if self.peft is None:
                    self.peft = PeftModel.from_pretrained(self.whisper, str(path), adapter_name=name).eval()
                else:
                    self.peft.load_adapter(str(path), adapter_name=name)
            self.peft.to(inference_device())

    def adapter_names(self) -> list[str]:
        """The names of the adapters loaded so far."""
        return [] if self.peft is None else list(self.peft.peft_config)

    # -- answering ------------------------------------------------------------------------

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
        """Greedy transcripts of ``requests``, each with its own adapter (or the base);
        segments with real timestamps for requests that ask for them."""
        from polyadapt.modalities.audio import AudioError, decode_audio

        audio = []
        for request in requests:
            try:
                audio.append(decode_audio(request.audio))
            except AudioError as exc:
                raise PolyadaptError(
                    f"cannot read the audio file {request.filename or ''}: {exc}".replace("  ", " ")
                ) from None
        results: list[TranscriptionResult | None] = [None] * len(requests)
        groups: dict[tuple[str | None, str, str | None, bool], list[int]] = {}
        for index, request in enumerate(requests):
            language = request.language or self.options.language or "en"
            groups.setdefault((request.adapter, language, request.prompt, request.timestamps), []).append(index)
        with self.lock:
            for (adapter, language, prompt, timestamps), indices in groups.items():
                model, context = self._model_for(adapter)
                decode = self._timestamped if timestamps else self._windowed
                with context:
                    segments, decoded_language = decode(model, [audio[i] for i in indices], language, prompt)
                for i, clip_segments in zip(indices, segments):
                    text = " ".join(s["text"] for s in clip_segments if s["text"]).strip()
                    results[i] = TranscriptionResult(
                        text=text,
                        language=decoded_language,
                        duration_s=round(len(audio[i]) / SAMPLE_RATE, 3),
                        segments=clip_segments,
                    )
        return results  # type: ignore[return-value]

    def _decode(self, model: Any, samples: list[Any], language: str, prompt: str | None, timestamps: bool):
        return transcribe_samples(
            model,
            samples,
            language=language,
            task=self.options.task,
            max_tokens=self.options.max_decode_tokens,
            prompt=prompt,
            timestamps=timestamps,
        )

    def _windowed(
        self, model: Any, clips: list[Any], language: str, prompt: str | None
    ) -> tuple[list[list[dict[str, Any]]], str]:
        """(segments per clip, language): one segment per consecutive window, no timestamps."""
        windows = [(c, start) for c, clip in enumerate(clips) for start in range(0, max(len(clip), 1), self.window)]
        decoded = self._decode(
            model, [clips[c][start : start + self.window] for c, start in windows], language, prompt, timestamps=False
        )
        segments: list[list[dict[str, Any]]] = [[] for _ in clips]
        for (c, start), result in zip(windows, decoded):
            end = min(len(clips[c]), start + self.window)
            segments[c].append(
                {
                    "id": len(segments[c]),
                    "start": round(start / SAMPLE_RATE, 3),
                    "end": round(end / SAMPLE_RATE, 3),
                    "text": result.text,
                }
            )
        return segments, decoded[0].language if decoded else language

    def _timestamped(
        self, model: Any, clips: list[Any], language: str, prompt: str | None
    ) -> tuple[list[list[dict[str, Any]]], str]:
        """(segments per clip, language): whisper's timestamped segments and seek."""
        from polyadapt_speech.model import tokenizer_for

        languages: list[str] = []

        def decode(windows: list[Window]) -> list[list[int]]:
            decoded = self._decode(
                model, [clips[c][start:end] for c, start, end in windows], language, prompt, timestamps=True
            )
            languages.extend(result.language for result in decoded[:1])
            return [result.tokens for result in decoded]

        tokenizer = tokenizer_for(model, language, self.options.task)
        found = seek_segments(
            [len(clip) for clip in clips], decode, tokenizer, window=self.window, sample_rate=SAMPLE_RATE
        )
        segments = [
            [
                {"id": n, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                for n, s in enumerate(clip_segments)
            ]
            for clip_segments in found
        ]
        return segments, languages[0] if languages else language
