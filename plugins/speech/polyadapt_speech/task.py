"""The speech-recognition task: what polyadapt's shared run asks of openai-whisper.

The core reads and governs the clips, writes ``data_summary.json`` and ``quarantine.jsonl``,
attaches LoRA, trains, saves atomically, records and serves; this task says how audio
folders are read, which Whisper to load, where LoRA goes (``task_options.lora_on``), what
an example and its loss are, how base and adapted are scored, and which endpoint serves it.

Imported at start-up by the plugin's entry module, so it imports no torch or whisper at
module level: every heavy import is inside a method.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.task import Task
from polyadapt_speech.options import SpeechOptions

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.serving.routes import Route
    from polyadapt.training import TrainingJob
    from polyadapt.types import AdapterArtifact, EvalReport, Run, ServeSpec


class SpeechRecognitionTask(Task):
    """LoRA on openai-whisper for a domain's jargon, accents and languages."""

    name = "speech-recognition"
    modality = "speech"
    description = (
        "openai-whisper ASR on an audio folder (jargon, accents, languages); WER, CER and glossary term recall"
    )
    default_base = "tiny.en"
    options_model = SpeechOptions
    record_noun = "clips"
    #: Voices are personal data: every clip needs consent unless the policy says otherwise.
    consent_required = True
    #: ``polyadapt export --format``: the adapter, or a plain openai-whisper checkpoint with it merged.
    export_formats = {
        "peft": "the PEFT adapter folder as the run saved it",
        "merged": "base + adapter merged into one openai-whisper checkpoint (whisper.load_model reads it)",
    }
    data_fields = {
        "train": "An audio folder (metadata.csv or metadata.jsonl with file_name and text beside the clips), "
        "or its metadata file",
        "eval": "A held-out audio folder of the same layout; default: data.eval_fraction of train",
        "general_eval": "An audio folder for the forgetting check; builtin: none ships with the plugin, so the "
        "check is skipped",
        "format": "Not read: the metadata file's extension decides",
        "kind": "Not read: every clip is one transcribed record",
    }

    # -- data ---------------------------------------------------------------------------

    def load_dataset(self, run: Run, path: Path, role: str) -> Dataset:
        """An audio folder (audiofolder layout: metadata.csv or .jsonl beside the clips),
        decoded to 16 kHz; clips longer than ``max_duration_s`` or quieter than
        ``silence_dbfs`` are quarantined with the corrupt and empty ones."""
        from polyadapt.modalities.audio import load_audio_dataset

        options = run.options
        return load_audio_dataset(
            path,
            max_duration_s=options.max_duration_s,
            silence_dbfs=options.silence_dbfs,
            follow_external_symlinks=run.config.data.follow_external_symlinks,
        )

    def builtin_dataset(self, role: str) -> tuple[Path, str] | None:
        """None: no general or replay audio ships with the plugin (``builtin`` skips the set)."""
        return None

    # -- model --------------------------------------------------------------------------

    def load_base(self, run: Run) -> Any:
        """The frozen :class:`whisper.model.Whisper` that ``base_model.id`` names (see
        :func:`polyadapt_speech.model.load_whisper`)."""
        from polyadapt_speech.model import load_whisper

        return load_whisper(run.config.base_model)

    def lora_module(self, base: Any) -> Any:
        """The Whisper model itself."""
        return base

    def lora_targets(self, run: Run, base: Any) -> str:
        """The attention (and with ``all-linear`` MLP) layers of the encoder, the decoder or
        both, as ``task_options.lora_on`` says (:func:`polyadapt_speech.model.lora_target_pattern`)."""
        from polyadapt_speech.model import lora_target_pattern

        return lora_target_pattern(run.config.lora, run.options.lora_on)

    # -- training -----------------------------------------------------------------------

    def training_job(self, run: Run, base: Any, model: Any, data: RunData) -> TrainingJob:
        """Teacher-forced transcripts of the training and replay clips (SpecAugment when
        enabled), scored on the held-out clips; facts: ``train_clips`` and ``train_audio_s``
        (seconds of training audio, replay aside)."""
        from polyadapt.training import TrainingJob
        from polyadapt_speech.data import WhisperLoss, build_examples, collate, summed_loss

        options = run.options
        train_examples = build_examples(base, data.train + data.replay, options)
        eval_examples = build_examples(base, data.heldout, options)
        facts = {
            "train_clips": len(train_examples),
            "train_audio_s": round(sum(record["duration_s"] for record in data.train), 2),
        }
        return TrainingJob(
            model=WhisperLoss(model, options.spec_augment),
            train_data=train_examples,
            collate=collate,
            loss=summed_loss,
            eval_data=eval_examples or None,
            facts=facts,
        )

    def save_adapter(self, run: Run, base: Any, model: Any, folder: Path) -> None:
        """The plain peft adapter (``adapter_model.safetensors``, ``adapter_config.json``)."""
        model.save_pretrained(folder, safe_serialization=True)

    def export(self, run: Run, adapter: AdapterArtifact, fmt: str, options: Any, folder: Path) -> dict[str, Any]:
        """``merged``: ``RUN.pt``, the base with the adapter folded in, for plain openai-whisper
        (:func:`polyadapt_speech.export.export_run`); ``peft``: a copy of the adapter folder."""
        if fmt == "peft":
            return super().export(run, adapter, fmt, options, folder)
        from polyadapt_speech.export import export_run

        return export_run(run, adapter, fmt, options, folder)

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, run: Run, adapter: AdapterArtifact, data: RunData) -> EvalReport:
        """WER, CER, glossary term recall and loss, base vs adapted, on the held-out domain
        clips and the general set (:func:`polyadapt_speech.evaluate.evaluate`)."""
        from polyadapt_speech.evaluate import evaluate

        return evaluate(run, adapter, data)

    # -- serving ------------------------------------------------------------------------

    def servable(self, spec: ServeSpec) -> Any:
        """One loaded Whisper with per-request adapters (:class:`polyadapt_speech.serve.SpeechServable`)."""
        from polyadapt_speech.serve import SpeechServable

        return SpeechServable(spec)

    def routes(self) -> list[Route]:
        """``POST /v1/audio/transcriptions`` (:mod:`polyadapt_speech.routes`)."""
        from polyadapt_speech.routes import TRANSCRIPTIONS

        return [TRANSCRIPTIONS]

    def input_sample(self, record: dict[str, Any]) -> Any:
        """A request is audio: its length, as the transcription route notes it (the
        transcript is what the model writes, not what it is asked)."""
        from polyadapt.monitoring.profile import InputSample

        seconds = record.get("duration_s")
        return InputSample(numbers={"audio_seconds": float(seconds)}) if isinstance(seconds, (int, float)) else None

    # -- tests --------------------------------------------------------------------------

    def tiny_models(self) -> dict[str, Any]:
        """``speech``: a tiny random Whisper checkpoint (``tiny-whisper/tiny-whisper.pt``)."""
        return {"speech": (_tiny_whisper, "tiny-whisper")}


def _tiny_whisper(folder: Path) -> Path:
    """A tiny random openai-whisper checkpoint in ``folder`` (:mod:`polyadapt_speech.testing`)."""
    from polyadapt_speech.testing import build_tiny_whisper

    return build_tiny_whisper(Path(folder) / "tiny-whisper.pt")
