"""polyadapt-speech: LoRA adaptation of openai-whisper speech recognition.

This entry module is imported when polyadapt starts, so it imports nothing heavy: torch,
whisper (which pulls in numba), torchaudio and peft are imported inside the hooks.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt.lineage.provenance import silence_peft_provenance_warning
from polyadapt.types import Task
from polyadapt_speech.options import SpeechOptions

POLYADAPT_API = ">=1,<2"

# peft ignores (and warns about) the provenance block polyadapt adds to adapter_config.json.
silence_peft_provenance_warning()

TASK = Task(
    name="speech-recognition",
    modality="speech",
    description="openai-whisper ASR on an audio folder (jargon, accents, languages); "
    "WER, CER and glossary term recall",
    default_base="tiny.en",
    options_model=SpeechOptions,
)


@hookimpl
def polyadapt_tasks():
    """Declare the speech-recognition task."""
    return [TASK]


@hookimpl
def polyadapt_adapt(run):
    """Train a LoRA adapter on the run's audio with the shared trainer."""
    from polyadapt_speech.adapt import adapt

    return adapt(run)


@hookimpl
def polyadapt_evaluate(run, adapter):
    """WER, CER and term recall base vs adapted on held-out domain and general audio."""
    from polyadapt_speech.evaluate import evaluate

    return evaluate(run, adapter)


@hookimpl
def polyadapt_serve(spec):
    """Load the base once and transcribe with per-request adapters."""
    from polyadapt_speech.serve import SpeechServable

    return SpeechServable(spec)
