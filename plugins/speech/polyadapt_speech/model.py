"""Loading a Whisper base (local checkpoint or whisper model name), its tokenizer, where LoRA goes.

LoRA goes on whisper's own ``Linear`` layers (a subclass of ``torch.nn.Linear``, so peft
wraps it as it is): the attention projections ``query``, ``key``, ``value``, ``out`` of
self- and cross-attention, and with ``lora.target_modules: all-linear`` the MLP's two
layers (``mlp.0``, ``mlp.2``), on the encoder, the decoder or both (``task_options.lora_on``).
The token embedding (tied to the output projection) and the convolutions stay frozen.
:func:`lora_target_pattern` says where; :func:`polyadapt.lora.attach_lora` attaches it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch

from polyadapt.config import BaseModelConfig, LoraConfig
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.pretrained import refusing_unsafe_pickles

ATTENTION_LEAVES = ("query", "key", "value", "out")
MLP_LEAVES = ("mlp.0", "mlp.2")
#: Hop between log-mel frames in samples (10 ms at 16 kHz).
HOP_LENGTH = 160


def whisper_cache() -> Path:
    """Where whisper model names are downloaded to (online only)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"
    return Path(os.environ.get("POLYADAPT_WHISPER_CACHE", default))


def checkpoint_path(config: BaseModelConfig) -> str:
    """The local checkpoint file or whisper model name ``base_model.id`` stands for.

    A CTranslate2 (faster-whisper) folder is converted once into a cached checkpoint
    (:mod:`polyadapt_speech.ct2`) and that file is returned.
    """
    source = str(Path(config.id).expanduser()) if config.id.startswith("~") else config.id
    path = Path(source)
    if path.is_dir():
        if (path / "model.bin").is_file():
            from polyadapt_speech.ct2 import converted_checkpoint

            return str(converted_checkpoint(path))
        candidates = sorted(path.glob("*.pt"))
        if len(candidates) == 1:
            return str(candidates[0])
        raise ConfigError(f"base_model.id: {config.id} is a folder; name the .pt checkpoint inside it")
    return source


def load_whisper(config: BaseModelConfig, *, map_device: str | torch.device = "cpu"):
    """The frozen :class:`whisper.model.Whisper` for ``base_model`` (fp32, eval mode).

    ``id`` is a local openai-whisper checkpoint (``.pt`` with ``dims`` and
    ``model_state_dict``, what :func:`whisper.load_model` reads), a folder holding one, a
    CTranslate2 (faster-whisper) model folder (converted once, see :mod:`polyadapt_speech.ct2`)
    or, online, a whisper model name (``tiny.en``, ``base``, ``small``...).
    """
    import whisper

    source = checkpoint_path(config)
    if not Path(source).is_file() and source not in whisper.available_models():
        raise ConfigError(
            f"base_model.id: {config.id!r} is neither a whisper checkpoint file nor a whisper model name "
            f"({', '.join(whisper.available_models())})"
        )
    try:
        with refusing_unsafe_pickles(source, what=f"base_model.id: {config.id!r}", error=ConfigError):
            model = whisper.load_model(source, device=str(map_device), download_root=str(whisper_cache()))
    except (OSError, RuntimeError, KeyError) as exc:
        raise ConfigError(f"base_model.id: cannot load whisper model {config.id!r}: {exc}") from None
    if Path(source).is_file():
        from polyadapt_speech.ct2 import apply_alignment_heads

        apply_alignment_heads(model, source)
    model = model.float().eval()
    model.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=64)
def _tokenizer(multilingual: bool, num_languages: int, language: str | None, task: str):
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(multilingual, num_languages=num_languages, language=language, task=task)


def tokenizer_for(model: Any, language: str | None = None, task: str = "transcribe"):
    """Whisper's tokenizer for ``model``; English-only models ignore language and task."""
    if not model.is_multilingual:
        return _tokenizer(False, model.num_languages, "en", "transcribe")
    return _tokenizer(True, model.num_languages, language or "en", task)


def record_language(record: dict[str, Any], options: Any) -> str:
    """The language a record's transcript is in: the options', else the record's, else en."""
    return (options.language if options is not None and options.language else None) or record.get("language") or "en"


def n_frames(model: Any) -> int:
    """Log-mel frames the encoder takes (3000, i.e. 30 s, for every released Whisper)."""
    return 2 * model.dims.n_audio_ctx


def log_mel(samples: Any, model: Any) -> torch.Tensor:
    """The (n_mels, n_frames) log-mel input of 16 kHz ``samples``, padded or cut to the window."""
    import whisper

    audio = torch.as_tensor(samples, dtype=torch.float32)
    audio = whisper.pad_or_trim(audio, n_frames(model) * HOP_LENGTH)
    return whisper.log_mel_spectrogram(audio, model.dims.n_mels)


def lora_target_pattern(lora: LoraConfig, lora_on: str) -> str:
    """The peft ``target_modules`` regex for ``lora.target_modules`` on ``lora_on``.

    ``auto``: the attention projections (self and cross); ``all-linear``: those and the
    MLP layers; a list: leaf names among query, key, value, out and mlp.
    """
    if lora.target_modules == "auto":
        leaves = list(ATTENTION_LEAVES)
    elif lora.target_modules == "all-linear":
        leaves = [*ATTENTION_LEAVES, "mlp"]
    else:
        allowed = {*ATTENTION_LEAVES, "mlp", *MLP_LEAVES}
        unknown = [name for name in lora.target_modules if name not in allowed]
        if unknown:
            raise ConfigError(
                f"lora.target_modules: {', '.join(map(repr, unknown))} are not whisper layers; use "
                f"auto, all-linear or a list of {', '.join(sorted(allowed))}"
            )
        leaves = list(lora.target_modules)
    attention = [leaf for leaf in leaves if leaf in ATTENTION_LEAVES]
    mlp = sorted({"0", "2"} if "mlp" in leaves else {leaf.split(".")[1] for leaf in leaves if leaf in MLP_LEAVES})
    parts = []
    if attention:
        parts.append(rf"(attn|cross_attn)\.({'|'.join(attention)})")
    if mlp:
        parts.append(rf"mlp\.({'|'.join(mlp)})")
    sides = {"encoder": "encoder", "decoder": "decoder", "both": "encoder|decoder"}[lora_on]
    return rf"({sides})\.blocks\.\d+\.({'|'.join(parts)})"


def whisper_of(model: Any) -> Any:
    """The :class:`whisper.model.Whisper` inside a peft model (LoRA layers in place), or itself."""
    from peft import PeftModel

    return model.base_model.model if isinstance(model, PeftModel) else model


def check_loadable(path: Path) -> None:
    """PolyadaptError unless ``path`` is an adapter folder peft can read."""
    if not (Path(path) / "adapter_config.json").is_file():
        raise PolyadaptError(f"{path}: not a peft adapter folder (no adapter_config.json)")
