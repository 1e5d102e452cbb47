"""Choosing the arithmetic precision for training."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 matrix units (AMX or AVX512-BF16), where bf16 is faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(requested: str) -> str:
    """``auto`` becomes bf16 on CUDA with bf16 support and on CPUs with bf16 units, else fp32."""
    if requested == "fp16" and not torch.cuda.is_available():
        from polyadapt.errors import ConfigError

        raise ConfigError("training.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def fast_weight_dtype() -> torch.dtype:
    """The dtype a frozen base model's weights should have: bf16 where bf16 is fast."""
    return torch.bfloat16 if resolve_precision("auto") == "bf16" else torch.float32
