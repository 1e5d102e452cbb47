"""Attaching LoRA adapters: the one place polyadapt calls peft to add trainable weights.

:func:`attach_lora` wraps a whole model (a causal LM, an encoder-decoder) in a ``PeftModel``;
:func:`inject_lora` adds an adapter inside a module that another library saves itself (a
diffusion UNet, a CLIP text encoder). Both read the run config's ``lora`` section and keep
the adapter weights in fp32 even on a bf16 base: they are small, and fp32 keeps the updates
exact. Importing this module imports no torch; the functions import peft.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polyadapt.config import LoraConfig
from polyadapt.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftMixedModel, PeftModel


def peft_config(lora: LoraConfig, targets: list[str] | str, **extra: Any) -> PeftLoraConfig:
    """The ``peft.LoraConfig`` for the run's ``lora`` section on ``targets``."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        use_dora=lora.dora,
        use_rslora=lora.rslora,
        **extra,
    )


def train_in_fp32(module: torch.nn.Module) -> None:
    """Cast the trainable (adapter) parameters of ``module`` to fp32."""
    for param in module.parameters():
        if param.requires_grad:
            param.data = param.data.float()


def attach_lora(
    model: torch.nn.Module,
    lora: LoraConfig,
    targets: list[str] | str,
    *,
    adapter_name: str = "default",
    task_type: str | None = None,
) -> PeftModel | PeftMixedModel:
    """``model`` wrapped in a ``PeftModel`` with a fresh, trainable LoRA adapter on ``targets``.

    ``task_type`` is peft's (``CAUSAL_LM``, ``SEQ_CLS``...): it decides which peft model class
    wraps the base and what ``adapter_config.json`` records. A target that matches no module
    is a :class:`ConfigError` naming ``lora.target_modules``.
    """
    from peft import get_peft_model

    config = peft_config(lora, targets, **({"task_type": task_type} if task_type else {}))
    try:
        peft_model = get_peft_model(model, config, adapter_name=adapter_name)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules: {exc}") from None
    train_in_fp32(peft_model)
    return peft_model


def inject_lora(
    module: Any,
    lora: LoraConfig,
    targets: list[str] | str,
    *,
    adapter_name: str,
    field: str = "lora.target_modules",
    **extra: Any,
) -> torch.nn.Module:
    """Add a trainable LoRA adapter inside ``module`` in place (no ``PeftModel`` wrapper).

    For modules whose own library saves adapters (a diffusion pipeline's UNet and text
    encoders); ``module.peft_config`` records the adapter, as such libraries expect. ``field`` names the
    config field to blame when ``targets`` match nothing; ``extra`` goes to ``peft.LoraConfig``
    (``init_lora_weights="gaussian"``, say).
    """
    from peft import inject_adapter_in_model

    config = peft_config(lora, targets, **extra)
    try:
        inject_adapter_in_model(config, module, adapter_name=adapter_name)
    except ValueError as exc:
        raise ConfigError(f"{field}: {exc}") from None
    existing = getattr(module, "peft_config", None)
    module.peft_config = {**(existing if isinstance(existing, dict) else {}), adapter_name: config}
    train_in_fp32(module)
    return module


def count_parameters(*modules: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts over ``modules`` (each parameter counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for module in modules:
        for param in module.parameters():
            if id(param) in seen:
                continue
            seen.add(id(param))
            total += param.numel()
            trainable += param.numel() if param.requires_grad else 0
    return trainable, total


def inference_device() -> torch.device:
    """The device evaluation and serving run on: CUDA when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
