"""Loading a causal LM base (hub id, local folder or GGUF file) and attaching LoRA."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from polyadapt.config import BaseModelConfig, LoraConfig
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.pretrained import cache_root

#: LoRA targets when ``target_modules: auto``: the attention projections of the family.
ATTENTION_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "starcoder2": ["q_proj", "k_proj", "v_proj", "o_proj"],
}



def resolve_dtype(name: str) -> torch.dtype:
    """The torch dtype for ``base_model.dtype``; ``auto`` is bf16 where bf16 is fast."""
    if name == "auto":
        from polyadapt.training.precision import fast_weight_dtype

        return fast_weight_dtype()
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _gguf_location(config: BaseModelConfig) -> tuple[str, str] | None:
    """(folder or repo, file name) when the base is a GGUF file, else None.

    ``~`` in ``id`` and ``gguf_file`` means the home folder, so a config can name a file in
    the user's cache (``~/.cache/polyadapt/models/x.gguf``) the same way on every machine.
    """
    if config.gguf_file:
        path = Path(config.gguf_file).expanduser()
        if path.is_absolute() or path.exists():
            return str(path.parent), path.name
        return str(Path(config.id).expanduser()) if config.id.startswith("~") else config.id, config.gguf_file
    if config.id.endswith(".gguf"):
        path = Path(config.id).expanduser()
        return str(path.parent), path.name
    return None


def _gguf_cache_dir(folder: str, filename: str) -> Path:
    path = Path(folder) / filename
    if path.is_file():
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    else:
        key = f"{folder}/{filename}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "gguf" / f"{Path(filename).stem}-{digest}"


def _clear_quantizer_marks(model: Any) -> None:
    """transformers marks GGUF models as quantized although it dequantizes them to plain
    layers; the marks make training and ``save_pretrained`` refuse the model."""
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:
            pass
    if hasattr(model.config, "quantization_config"):
        try:
            delattr(model.config, "quantization_config")
        except AttributeError:
            model.config.quantization_config = None


def convert_gguf(folder: str, filename: str) -> Path:
    """Dequantize a GGUF file once into a safetensors folder in the cache; return the folder.

    Parsing GGUF takes tens of seconds (SmolLM2-135M Q4_1: ~20 s on 2 CPU cores); loading
    the cached copy takes a fraction of one. The copy is fp32 (what transformers
    dequantizes to) and keeps the GGUF's tokenizer with its chat template. ``load_base``
    casts it to ``base_model.dtype`` when loading.
    """
    import sys

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from polyadapt.fileio import atomic_directory

    target = _gguf_cache_dir(folder, filename)
    if (target / "config.json").is_file():
        return target
    source = Path(folder) / filename
    if Path(folder).is_dir() and not source.is_file():
        raise ConfigError(f"base_model: GGUF file {source} does not exist")
    print(f"polyadapt: converting {source} to safetensors once (cached in {target})", file=sys.stderr, flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    except ImportError as exc:  # the gguf package is missing or too old
        raise PolyadaptError(f"cannot read GGUF model {source}: {exc}") from None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise PolyadaptError(f"cannot read GGUF model {source}: {type(exc).__name__}: {exc}") from None
    _clear_quantizer_marks(model)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def model_source(config: BaseModelConfig) -> str:
    """The folder or hub id transformers loads (a GGUF base is converted and cached first)."""
    gguf = _gguf_location(config)
    return str(convert_gguf(*gguf)) if gguf else config.id


def load_tokenizer(config: BaseModelConfig, source: str | None = None):
    """The base model's tokenizer, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    source = source or model_source(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            config.tokenizer or source, revision=config.revision, trust_remote_code=config.trust_remote_code
        )
    except OSError as exc:
        raise ConfigError(f"base_model: cannot load the tokenizer of {config.id!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(config: BaseModelConfig, *, dtype: torch.dtype | None = None):
    """Load the frozen base model and its tokenizer from a hub id, a folder or a GGUF file."""
    from transformers import AutoModelForCausalLM

    from polyadapt.pretrained import load_pretrained
    from polyadapt_text.quantization import prepare_quantized, quantization_kwargs

    quantized = quantization_kwargs(config)  # QLoRA (CUDA only); {} without quantization
    source = model_source(config)
    model = load_pretrained(
        AutoModelForCausalLM.from_pretrained,
        source,
        shown=config.id,
        revision=config.revision,
        trust_remote_code=config.trust_remote_code,
        **{"dtype": dtype or resolve_dtype(config.dtype), **quantized},
    )
    model.requires_grad_(False)
    model = prepare_quantized(model, config)
    return model, load_tokenizer(config, source)


#: Where model families keep their position limit, in the order transformers' own code looks.
CONTEXT_ATTRIBUTES = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_length(model: Any) -> int | None:
    """The most positions ``model`` (a transformers model) reads, from its config; None if unknown."""
    config = getattr(model, "config", None)
    for name in CONTEXT_ATTRIBUTES:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def lora_targets(model: Any, lora: LoraConfig) -> list[str] | str:
    """The module names LoRA attaches to: the config's list, or the family's attention."""
    if lora.target_modules != "auto":
        return lora.target_modules
    return ATTENTION_TARGETS.get(getattr(model.config, "model_type", ""), "all-linear")
