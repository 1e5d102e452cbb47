"""The merged model with its weights rounded as a GGUF file of a given type stores them.

A 4-bit GGUF of a small model agrees with the merged model on the most likely next token at
only 64-85% of positions: the rounding, not the file, moves the rest. Compared with this
twin instead (each weight quantized and dequantized by the same ``gguf.quants`` functions,
with the same per-tensor types as :func:`polyadapt_text.gguf_export.tensor_type` chooses),
a correctly laid out file agrees everywhere, so a wrong tensor name, permutation or
hyperparameter shows however coarse the type.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polyadapt_text.gguf_export import tensor_type


def round_like_gguf(model: Any, quant: str) -> dict[str, int]:
    """Round every weight of ``model`` in place as ``write_gguf`` stores it under ``quant``
    (``f16``, ``q8_0``, ``q4_0`` ...); the number of tensors per type, as ``write_gguf`` counts."""
    import gguf

    qtype = quant.upper()
    output = model.get_output_embeddings()
    embedding = model.get_input_embeddings()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    counts: dict[str, int] = {}
    for _, param in model.named_parameters():  # a tied embedding comes once
        data = param.detach().float().cpu().numpy()
        serves_output = param is getattr(output, "weight", None) or (tied and param is embedding.weight)
        name = "output.weight" if serves_output else ("blk.weight" if data.ndim > 1 else "blk.bias")
        kind = tensor_type(name, data.shape, qtype, output_like=serves_output)
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "F32":
            continue
        if kind == "F16":
            rounded = data.astype(np.float16).astype(np.float32)
        else:
            raw = getattr(gguf.GGMLQuantizationType, kind)
            rounded = gguf.quants.dequantize(gguf.quants.quantize(np.ascontiguousarray(data), raw), raw)
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.asarray(rounded, dtype=np.float32).reshape(data.shape)))
    return counts
