"""Tiny random Whisper checkpoints for tests (no download).

:func:`build_tiny_whisper` writes an openai-whisper checkpoint (``dims`` +
``model_state_dict``, what :func:`whisper.load_model` reads) of a random model small
enough to train in seconds on a CPU: 2+2 layers of width 64, a 3 s audio window
(``n_audio_ctx`` 150) and the real English-only vocabulary, so whisper's tokenizer, decoder
and normalisers run unchanged. Speech content does not matter to a random model: sine
tones and noise made in the test do.

The speech-recognition task offers it as ``speech``
(:meth:`polyadapt_speech.task.SpeechRecognitionTask.tiny_models`), so
``polyadapt.testing``'s ``tiny_base_model("speech")`` builds it when the plugin is installed.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

#: The dimensions of the tiny model (English-only vocabulary: 51864 tokens).
TINY_DIMS = dict(
    n_mels=80,
    n_audio_ctx=150,
    n_audio_state=64,
    n_audio_head=2,
    n_audio_layer=2,
    n_vocab=51864,
    n_text_ctx=64,
    n_text_state=64,
    n_text_head=2,
    n_text_layer=2,
)
#: The first special token of both vocabularies (<|endoftext|>).
ENGLISH_EOT = 50256


def build_tiny_whisper(path: Path, *, seed: int = 0, multilingual: bool = False, **dims: int) -> Path:
    """Write a tiny random Whisper checkpoint to ``path`` (a ``.pt`` file) and return it.

    ``multilingual`` uses the 99-language vocabulary (51865 tokens) instead of English-only;
    ``dims`` override :data:`TINY_DIMS`.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    settings = {**TINY_DIMS, **({"n_vocab": 51865} if multilingual else {}), **dims}
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Whisper(ModelDimensions(**settings))
    finally:
        torch.random.set_rng_state(generator_state)
    with torch.no_grad():
        # whisper leaves the decoder's position table uninitialised (torch.empty): real
        # checkpoints overwrite it, a random model must fill it or it may hold NaNs
        model.decoder.positional_embedding.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed))
        # Special tokens (end-of-text and up) get small embeddings, so greedy decoding of
        # the random model writes text tokens rather than stopping at once: transcripts
        # that differ between base and adapters are something tests can compare.
        model.decoder.token_embedding.weight[ENGLISH_EOT:] *= 0.05
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(model.dims), "model_state_dict": model.state_dict()}, path)
    return path


def tone(
    seconds: float,
    frequency: float,
    *,
    sample_rate: int = 16_000,
    amplitude: float = 0.3,
    noise: float = 0.02,
    seed: int = 0,
):
    """A sine tone with a little noise (float32 numpy array), a stand-in for a spoken clip."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(len(t))
    return wave.astype(np.float32)
