"""Many LoRA adapters in one batch, one per row, at about the cost of one.

PEFT's mixed-batch path (``adapter_names=[...]``) loops, in every LoRA layer and at every
decoding step, over the adapters present in the batch: it gathers each adapter's rows, runs
its two small matmuls on them and scatters the result back. On a batch spread over four
adapters that is four times the LoRA work plus the gathers, and the whole batch ran at about
0.55-0.8x the speed of the same batch on one adapter.

:func:`adapters_by_row` instead concatenates, once per call, the batch's adapters in every
LoRA layer (their A matrices along the rank, their B matrices likewise) and adds, after the
base layer, ``((x @ A_cat.T) * row_scale) @ B_cat.T``, where ``row_scale`` holds each row's
adapter scaling on that adapter's rank columns and zero elsewhere. That is two matmuls and a
multiply per layer whatever the number of adapters (its inner size is the sum of their ranks),
the same count as a single adapter. Rows for the bare base (``"__base__"``) get zero scale.

Only plain LoRA on ``Linear`` layers takes this path. Anything else (DoRA and other variants,
LoRA on embeddings or convolutions, ``lora_bias``, merged weights) falls back to PEFT's own
mixed batch, which :func:`adapters_by_row` then asks for by returning ``adapter_names``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

#: The name PEFT's mixed-batch path uses for "no adapter"; rows so named get the bare base.
BASE_ROW = "__base__"


def _lora_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every PEFT LoRA layer of ``model`` (wrappers that hold ``lora_A``)."""
    from peft.tuners.lora.layer import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]


def _plain_linear(module: Any, adapters: list[str]) -> bool:
    """Whether ``module`` applies each of ``adapters`` as plain LoRA on a linear layer."""
    from peft.tuners.lora.layer import Linear

    held = [name for name in adapters if name in module.lora_A]
    if not held:
        return True
    if not isinstance(module, Linear) or getattr(module, "merged", False):
        return False
    variants = getattr(module, "lora_variant", {})
    return all(
        name not in variants
        and isinstance(module.lora_A[name], torch.nn.Linear)
        and module.lora_B[name].bias is None
        and not getattr(module, "fan_in_fan_out", False)
        for name in held
    )


def rows_supported(model: torch.nn.Module, adapters: list[str]) -> bool:
    """Whether every LoRA layer applies ``adapters`` in a way :func:`adapters_by_row` can stack."""
    return all(_plain_linear(module, adapters) for module in _lora_modules(model))


def _row_delta_hook(module: Any, names: list[str], adapters: list[str]) -> Any:
    """A forward hook adding each row's own adapter to ``module``'s base output, or None when
    the layer holds none of ``adapters``."""
    held = [name for name in adapters if name in module.lora_A]
    if not held:
        return None
    a_cat = torch.cat([module.lora_A[name].weight for name in held], dim=0)  # (sum r, in)
    b_cat = torch.cat([module.lora_B[name].weight for name in held], dim=1)  # (out, sum r)
    scale = torch.zeros(len(names), 1, a_cat.shape[0], dtype=a_cat.dtype, device=a_cat.device)
    start = 0
    for name in held:
        rank = module.lora_A[name].weight.shape[0]
        rows = [row for row, row_name in enumerate(names) if row_name == name]
        scale[rows, 0, start : start + rank] = float(module.scaling[name])
        start += rank
    a_t, b_t = a_cat.t().contiguous(), b_cat.t().contiguous()

    def add_row_adapters(_module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        if x.shape[0] != scale.shape[0]:
            raise RuntimeError(f"a batch of {x.shape[0]} rows reached a layer set up for {scale.shape[0]}")
        row_scale = scale if x.dim() == 3 else scale.squeeze(1)
        delta = ((x.to(a_t.dtype) @ a_t) * row_scale) @ b_t
        return output + delta.to(output.dtype)

    return add_row_adapters


@contextlib.contextmanager
def adapters_by_row(model: Any, names: list[str]) -> Iterator[dict[str, Any]]:
    """Run ``model``'s forward passes with row ``i`` through the loaded adapter ``names[i]``.

    ``model`` is a ``PeftModel`` holding every named adapter; ``"__base__"`` names the bare
    base. Yields the keyword arguments to add to ``generate`` or ``forward``: none when the
    rows run stacked (or all on one adapter), ``{"adapter_names": names}`` when PEFT's own
    mixed batch has to do it. Hold no other call on ``model`` meanwhile: the active adapter
    and forward hooks are changed for the duration.
    """
    distinct = list(dict.fromkeys(names))
    adapters = [name for name in distinct if name != BASE_ROW]
    if not adapters:
        with model.disable_adapter():
            yield {}
        return
    if len(distinct) == 1:
        model.set_adapter(adapters[0], inference_mode=True)
        yield {}
        return
    if not rows_supported(model, adapters):
        yield {"adapter_names": names}
        return
    handles = []
    try:
        for module in _lora_modules(model):
            hook = _row_delta_hook(module, names, adapters)
            if hook is not None:
                handles.append(module.register_forward_hook(hook))
        with model.disable_adapter():
            yield {}
    finally:
        for handle in handles:
            handle.remove()
