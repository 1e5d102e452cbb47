"""What differs between the architectures :mod:`polyadapt_text.gguf_export` writes.

Each entry follows one model class of llama.cpp's ``convert_hf_to_gguf.py``:

* ``llama`` (``LlamaModel``: SmolLM2, Llama 2 and 3, TinyLlama): hyperparameters under
  ``llama.*`` with ``rope.dimension_count``, the Q and K projections permuted into GGML's
  rotary layout, no biases.
* ``qwen2`` (``Qwen2Model``, which keeps ``TextModel``'s parameters: Qwen2, Qwen2.5,
  Qwen2.5-Coder): hyperparameters under ``qwen2.*`` without ``rope.dimension_count``, no
  permutation (llama.cpp's qwen2 graph uses NeoX rotary, Hugging Face's layout), the q/k/v
  biases written as ``blk.N.attn_{q,k,v}.bias`` in f32.

Tensor names come from ``gguf.TensorNameMap`` of each architecture; tied or untied output
is the writer's business (an absent ``output.weight`` means the embedding is the output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """One architecture the GGUF writer handles."""

    #: the ``gguf.MODEL_ARCH`` member written
    gguf_arch: str
    #: the model families it covers, for messages and docs
    families: str
    #: permute the Q and K projections into GGML's interleaved rotary layout (``LlamaModel``)
    permute_qk: bool
    #: write ``{arch}.rope.dimension_count`` (``LlamaModel`` does; ``TextModel`` does not)
    rope_dimension_count: bool
    #: config flags that, when true, the architecture cannot express in llama.cpp
    refused_flags: tuple[str, ...] = ()


#: transformers ``model_type`` -> what is written for it.
ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(
        gguf_arch="LLAMA",
        families="SmolLM2, Llama 2 and 3, TinyLlama",
        permute_qk=True,
        rope_dimension_count=True,
        refused_flags=("attention_bias", "mlp_bias"),
    ),
    "qwen2": Architecture(
        gguf_arch="QWEN2",
        families="Qwen2, Qwen2.5, Qwen2.5-Coder",
        permute_qk=False,
        rope_dimension_count=False,
        # llama.cpp's qwen2 graph has no sliding-window attention
        refused_flags=("use_sliding_window",),
    ),
}


def permute(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """llama.cpp's ``LlamaModel.permute``: Hugging Face's rotary layout (halves) -> GGML's
    (interleaved pairs), per head; K uses the key/value head count."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def transform(arch: Architecture, hf_name: str, data: Any, n_head: int, n_head_kv: int) -> Any:
    """The tensor ``hf_name`` as llama.cpp's converter writes it for ``arch`` (the Q/K weight
    permutation of ``LlamaModel``; every other tensor, and every Qwen2 tensor, as it is)."""
    if arch.permute_qk and hf_name.endswith("q_proj.weight"):
        return permute(data, n_head, n_head)
    if arch.permute_qk and hf_name.endswith("k_proj.weight"):
        return permute(data, n_head, n_head_kv)
    return data
