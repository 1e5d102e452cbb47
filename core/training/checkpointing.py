"""Gradient (activation) checkpointing: ``training.gradient_checkpointing``, for any task.

The trainer asks :func:`apply_gradient_checkpointing` before it prepares the model. It
finds the outermost modules that know how to checkpoint themselves (transformers models:
``gradient_checkpointing_enable``; other model libraries: ``enable_gradient_checkpointing``)
anywhere inside the job's model (a loss wrapper, a PEFT model, a pipeline's UNet) and
turns checkpointing on or off there. Non-reentrant checkpointing is used: it needs no
input that requires grad (so no ``enable_input_require_grads`` hook for a frozen PEFT
base), works with DDP and FSDP, and restores the RNG state for the recomputation, so
dropout draws the same masks and the gradients equal those without checkpointing.

``auto`` decides with a rule that can be checked: checkpointing trades ~1/3 more compute
(a second forward of each layer) for the activations of the layers, so it pays only when
those activations threaten the memory. The activations of one micro-batch are estimated
as ``34 * hidden * layers * tokens`` bytes (Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models", per-layer activations ``34 s b h`` bytes in 16
bit with fused attention), tokens = ``batch_size * max_length``; checkpointing is on when
that exceeds a quarter of the device's memory (the GPU's total memory, or physical RAM on
a CPU), else off. Measured on 2 CPU cores (see docs/distributed.md): a small model at 4 x
256 tokens trains ~25-35% slower with checkpointing and saves a few hundred MB, so ``auto``
leaves it off there; on a GPU a 7-8B model at 4 x 4096 tokens (~70 GB estimated) turns it
on, SmolLM2-135M at 4 x 512 (~1.2 GB) leaves it off.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from polyadapt.errors import ConfigError

log = logging.getLogger(__name__)

#: Bytes of activations kept per token, per layer, per unit of hidden size (16-bit, fused attention).
ACTIVATION_BYTES_PER_TOKEN_LAYER_HIDDEN = 34
#: ``auto`` turns checkpointing on when the estimate exceeds this share of the device's memory.
AUTO_MEMORY_SHARE = 0.25


@dataclass
class CheckpointingDecision:
    """What :func:`apply_gradient_checkpointing` did and why (the trainer logs and records it)."""

    enabled: bool
    reason: str
    modules: int = 0
    estimated_activation_bytes: int | None = None


def checkpointable_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The outermost modules inside ``model`` (itself included) that can checkpoint themselves."""
    found: list[tuple[str, torch.nn.Module]] = []
    for name, module in model.named_modules():
        if any(name == prefix or name.startswith(prefix + ".") for prefix, _ in found if prefix):
            continue
        if found and found[0][0] == "":  # the model itself checkpoints: nothing inside needed
            break
        if _supports(module):
            found.append((name, module))
    return [module for _, module in found]


def _supports(module: torch.nn.Module) -> bool:
    # PEFT models answer attribute lookups through their base model; that is what we want
    # (the PeftModel is then the outermost module and calls down to the transformers model)
    transformers_style = callable(getattr(module, "gradient_checkpointing_enable", None)) and bool(
        getattr(module, "supports_gradient_checkpointing", False)
    )
    enable_style = callable(getattr(module, "enable_gradient_checkpointing", None)) and bool(
        getattr(module, "_supports_gradient_checkpointing", False)
    )
    return transformers_style or enable_style


def _enable(module: Any) -> None:
    if callable(getattr(module, "activation_checkpointing_enable", None)):  # transformers >= 5.2x
        module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif callable(getattr(module, "gradient_checkpointing_enable", None)):
        module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "use_cache", None):
            config.use_cache = False  # a KV cache is useless in training and clashes with recomputation
    else:
        module.enable_gradient_checkpointing()


def _disable(module: Any) -> None:
    if callable(getattr(module, "activation_checkpointing_disable", None)):
        module.activation_checkpointing_disable()
    elif callable(getattr(module, "gradient_checkpointing_disable", None)):
        module.gradient_checkpointing_disable()
    elif callable(getattr(module, "disable_gradient_checkpointing", None)):
        module.disable_gradient_checkpointing()


def is_checkpointing(model: torch.nn.Module) -> bool:
    """True when some module inside ``model`` has gradient checkpointing switched on."""
    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False) is True:
            return True
    return False


def _shape(module: torch.nn.Module) -> tuple[int, int] | None:
    """(hidden size, layers) from a transformers-style config, or None."""
    config = getattr(module, "config", None)
    for inner in (config, getattr(config, "text_config", None)):
        if inner is None:
            continue
        hidden = getattr(inner, "hidden_size", None) or getattr(inner, "d_model", None)
        layers = getattr(inner, "num_hidden_layers", None) or getattr(inner, "num_layers", None)
        if isinstance(hidden, int) and isinstance(layers, int):
            return hidden, layers
    return None


def device_memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device``: the GPU's, or the machine's physical RAM for a CPU."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def estimate_activation_bytes(modules: list[torch.nn.Module], tokens: int) -> int | None:
    """Activations one micro-batch of ``tokens`` keeps for backward (see the module docstring)."""
    total = 0
    for module in modules:
        shape = _shape(module)
        if shape is None:
            return None
        hidden, layers = shape
        total += ACTIVATION_BYTES_PER_TOKEN_LAYER_HIDDEN * hidden * layers * tokens
    return total


def apply_gradient_checkpointing(
    model: torch.nn.Module, setting: bool | str, *, tokens_per_micro_batch: int, device: torch.device
) -> CheckpointingDecision:
    """Switch checkpointing on or off inside ``model`` as ``setting`` (true, false, auto) says.

    ``true`` on a model with nothing that can checkpoint is a :class:`ConfigError`.
    """
    modules = checkpointable_modules(model)
    if setting is False:
        for module in modules:
            _disable(module)
        return CheckpointingDecision(False, "training.gradient_checkpointing: false", len(modules))
    if not modules:
        if setting is True:
            raise ConfigError(
                "training.gradient_checkpointing is true but the task's model has no part that supports "
                "gradient checkpointing; set it to auto or false"
            )
        return CheckpointingDecision(False, "auto: the model does not support it")
    estimate = estimate_activation_bytes(modules, tokens_per_micro_batch)
    if setting is True:
        enabled, reason = True, "training.gradient_checkpointing: true"
    else:
        memory = device_memory_bytes(device)
        if estimate is None or memory is None:
            enabled, reason = False, "auto: activation size or device memory unknown"
        else:
            enabled = estimate > AUTO_MEMORY_SHARE * memory
            reason = (
                f"auto: ~{estimate / 1e9:.2f} GB of activations per micro-batch "
                f"{'>' if enabled else '<='} {AUTO_MEMORY_SHARE:.0%} of {memory / 1e9:.1f} GB ({device.type})"
            )
    if enabled:
        for module in modules:
            _enable(module)
    elif is_checkpointing(model):  # auto and not needed, but the task switched it on itself
        enabled, reason = True, f"{reason}; left on as the task set it"
    log.info("gradient checkpointing %s (%s)", "on" if enabled else "off", reason)
    return CheckpointingDecision(enabled, reason, len(modules), estimate)


def describe(decision: CheckpointingDecision) -> dict[str, Any]:
    """The decision as the training result records it."""
    return {"gradient_checkpointing": decision.enabled, "gradient_checkpointing_reason": decision.reason}
