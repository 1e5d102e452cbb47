"""QLoRA: loading the frozen base quantized with bitsandbytes (``base_model.quantization``).

``4bit`` is the QLoRA recipe (Dettmers et al. 2023): NF4 weights, double quantization
(the quantization constants quantized too), bf16 compute (fp16 on GPUs without bf16).
``8bit`` is LLM.int8(). The LoRA adapter itself stays in fp32 on top of the quantized
layers. bitsandbytes quantizes on CUDA GPUs only; anywhere else the run stops with a
:class:`ConfigError` that names the field and the device, before the model is read.
"""

from __future__ import annotations

from typing import Any

from polyadapt.config import BaseModelConfig
from polyadapt.errors import ConfigError


def quantization_kwargs(config: BaseModelConfig) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments for ``base_model.quantization`` (none: nothing).

    Raises :class:`ConfigError` where the quantized base cannot be loaded: no CUDA GPU, or
    bitsandbytes not installed.
    """
    mode = config.quantization
    if mode == "none":
        return {}
    import torch

    if not torch.cuda.is_available():
        device = "Apple MPS" if torch.backends.mps.is_available() else "CPU"
        raise ConfigError(
            f"base_model.quantization: {mode} (QLoRA) needs a CUDA GPU, but this run's device is the {device} "
            "(bitsandbytes quantizes on CUDA only); set base_model.quantization: none to train in full "
            "precision here, or run on a machine with an NVIDIA GPU"
        )
    try:
        import bitsandbytes  # noqa: F401  (transformers names it only when loading)
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ConfigError(
            f"base_model.quantization: {mode} needs the bitsandbytes package; install it with "
            "`pip install 'polyadapt[qlora]'` (or `pip install bitsandbytes`), or set base_model.quantization: none"
        ) from None
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "4bit":
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_quant_storage=compute,  # FSDP can shard 4-bit weights stored as this dtype
        )
    else:
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    from accelerate import PartialState

    # each process puts the whole (quantized) base on its own GPU
    return {"quantization_config": bnb, "device_map": {"": PartialState().local_process_index}, "dtype": compute}


def prepare_quantized(model: Any, config: BaseModelConfig) -> Any:
    """Make a quantized base ready for LoRA training (peft's ``prepare_model_for_kbit_training``:
    frozen, norms and embeddings in fp32); checkpointing is left to the trainer."""
    if config.quantization == "none":
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
