"""polyadapt-speech: LoRA adaptation of openai-whisper speech recognition.

The plugin registers one task, :class:`polyadapt_speech.task.SpeechRecognitionTask`
(``task: speech-recognition``); polyadapt's core runs adapt, evaluate and serve with it.
This entry module is imported when polyadapt starts, so it imports nothing heavy: torch,
whisper (which pulls in numba), torchaudio and peft are imported inside the task's methods.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt_speech.task import SpeechRecognitionTask

POLYADAPT_API = ">=2,<3"


@hookimpl
def polyadapt_tasks():
    """Declare the speech-recognition task."""
    return [SpeechRecognitionTask()]
