"""Write a Hugging Face causal LM folder as one GGUF file (llama.cpp, Ollama, LM Studio).

What llama.cpp's ``convert_hf_to_gguf.py`` does for its ``LlamaModel`` and ``Qwen2Model``,
written with the ``gguf`` package: the hyperparameters under the architecture's name, the
byte-level BPE tokenizer (tokens, token types, merges, special token ids, chat template:
``gguf.SpecialVocab`` reads them from the folder as llama.cpp does), the tensors renamed by
``gguf.TensorNameMap`` (with what differs per architecture in :mod:`polyadapt_text.gguf_arch`),
and each tensor's type chosen by :func:`tensor_type`. transformers' GGUF loader undoes exactly
these steps (``from_pretrained(folder, gguf_file=...)``), which is how
:mod:`polyadapt_text.export` checks every file it writes.

Which tensors keep more precision than ``--quant`` says (:func:`tensor_type`):

* 1-D tensors, norms and biases are f32 (the converter: most of ggml reads them in f32 only);
* with a 4- or 5-bit type, the output projection (the token embedding when they are tied) is
  q8_0: ``llama-quantize`` makes it q6_K, which the ``gguf`` package cannot write, and falls
  back to q8_0 itself when the rows do not fit q6_K's blocks. An untied token embedding gets
  the file's type, as ``llama-quantize`` gives it;
* a tensor whose rows are not a whole number of blocks (32 values) is f16, the converter's
  fallback.

Architectures other than :data:`~polyadapt_text.gguf_arch.ARCHITECTURES` are refused by name,
with ``--format merged`` as the way out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError
from polyadapt_text.gguf_arch import ARCHITECTURES, permute, transform

__all__ = ["ARCHITECTURES", "QUANTS", "check_supported", "permute", "tensor_type", "write_gguf"]

#: transformers ``model_type`` -> the architecture written (gguf's ``MODEL_ARCH`` member).
SUPPORTED_ARCHITECTURES = {name: arch.gguf_arch for name, arch in ARCHITECTURES.items()}
#: ``--quant`` -> (gguf quantization type of 2-D tensors, ``general.file_type``), by name in the
#: gguf package; every one is one ``gguf.quants`` quantizes in numpy.
QUANTS = {
    "f16": ("F16", "MOSTLY_F16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q5_1": ("Q5_1", "MOSTLY_Q5_1"),
    "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
    "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
}
#: Qwen2's pre-tokenizer regex (``tokenizer.json`` of Qwen2 and Qwen2.5; llama.cpp's ``qwen2``).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
#: The types of at most 5 bits, under which the output projection is kept at q8_0.
LOW_BIT = ("Q4_0", "Q4_1", "Q5_0", "Q5_1")


def unsupported(what: str) -> PolyadaptError:
    """The error for a model the GGUF writer cannot write, naming the way out."""
    families = "; ".join(arch.families for name, arch in ARCHITECTURES.items() if name in SUPPORTED_ARCHITECTURES)
    return PolyadaptError(
        f"cannot export this model as GGUF: {what}. GGUF export supports the architectures "
        f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))} ({families}); export it with "
        "`--format merged` (safetensors that transformers, vLLM or llama.cpp's own "
        "convert_hf_to_gguf.py read) instead"
    )


def check_supported(config: dict[str, Any]) -> None:
    """Refuse, by name, a model whose config the writer cannot express in GGUF."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise unsupported(f"architecture {model_type!r}")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type not in (None, "default"):
        raise unsupported(f"rope scaling {rope_type!r} of {model_type}")
    for flag in ARCHITECTURES[model_type].refused_flags if model_type in ARCHITECTURES else ():
        if config.get(flag):
            raise unsupported(f"{model_type} with {flag}")


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        return float(rope["rope_theta"])
    return float(config.get("rope_theta", 10000.0))


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer (``tokenizer.ggml.pre``).

    llama.cpp recognises a pre-tokenizer by hashing how it splits a probe text; the
    byte-level ones of the architectures written are read off ``tokenizer.json`` here:
    ``gpt-2`` (byte-level with GPT-2's regex), ``smollm`` (each digit alone, then GPT-2's)
    and ``qwen2`` (a split on Qwen2's regex, then byte-level without a regex).
    """
    spec = tokenizer_json.get("pre_tokenizer") or {}
    parts = spec.get("pretokenizers", []) if spec.get("type") == "Sequence" else [spec]
    kinds = [part.get("type") for part in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    if (
        kinds == ["Split", "ByteLevel"]
        and (parts[0].get("pattern") or {}).get("Regex") == QWEN2_SPLIT
        and str(parts[0].get("behavior", "")).lower() == "isolated"
        and not parts[0].get("invert")
        and not parts[1].get("use_regex", True)
    ):
        return "qwen2"
    raise unsupported(f"a tokenizer whose pre-tokenizer is {kinds or 'missing'} (byte-level BPE only)")


def source_pre_tokenizer(path: Path) -> str | None:
    """The ``tokenizer.ggml.pre`` of an existing GGUF file (None when it has none)."""
    import gguf

    field = gguf.GGUFReader(path).fields.get("tokenizer.ggml.pre")
    return str(field.contents()) if field is not None else None


def _vocabulary(folder: Path, vocab_size: int) -> tuple[list[str], list[int], str, bool]:
    """Tokens, their GGUF types and the pre-tokenizer name, as llama.cpp's ``get_vocab_base``;
    and whether the tokenizer puts its BOS token before a text."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise unsupported("a tokenizer without tokenizer.json (a fast, byte-level BPE tokenizer is needed)")
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    if (spec.get("model") or {}).get("type") != "BPE":
        raise unsupported(f"a {(spec.get('model') or {}).get('type')} tokenizer (byte-level BPE only)")
    pre = pre_tokenizer_name(spec)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise PolyadaptError(f"{folder}: the tokenizer has ids up to {max(vocab.values())}, the model {vocab_size}")
    reverse = {index: token for token, index in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            # llama.cpp's does_token_look_special: <|...|> is control even when not marked special
            special = decoder[index].special or (token.startswith("<|") and token.endswith("|>"))
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]
    return tokens, types, pre, adds_bos


def tensor_type(gguf_name: str, shape: tuple[int, ...], qtype: str, *, output_like: bool = False) -> str:
    """The gguf type name a tensor is written in under ``--quant`` type ``qtype`` (see the module doc).

    :param gguf_name: the tensor's GGUF name (``blk.0.attn_q.weight``).
    :param output_like: the tensor also serves as the output projection (the token embedding
        when the two are tied); ``output.weight`` always does.
    """
    import gguf

    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return "F32"
    if qtype == "F16":
        return "F16"
    if (output_like or gguf_name == "output.weight") and qtype in LOW_BIT:
        qtype = "Q8_0"
    block = gguf.GGML_QUANT_SIZES[getattr(gguf.GGMLQuantizationType, qtype)][0]
    return qtype if shape[-1] % block == 0 else "F16"


def _tensors(folder: Path) -> Iterator[tuple[str, Any]]:
    """Each tensor of the folder's ``*.safetensors`` as a float32 numpy array, one at a time."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise PolyadaptError(f"{folder}: no *.safetensors weights to write as GGUF")
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in sorted(handle.keys()):  # noqa: SIM118 (safe_open is no mapping)
                yield name, handle.get_tensor(name).float().numpy()


def write_gguf(
    folder: Path, output: Path, quant: str, *, name: str, pre_tokenizer: str | None = None
) -> dict[str, Any]:
    """Write the causal LM in ``folder`` (config.json, safetensors, tokenizer) to ``output``.

    :param quant: a key of :data:`QUANTS`: the type of the 2-D weights, with the exceptions
        :func:`tensor_type` makes.
    :param name: ``general.name``.
    :param pre_tokenizer: ``tokenizer.ggml.pre`` to write instead of the one read off the
        tokenizer (a GGUF base's own: transformers does not keep it when it reads the file).
    :returns: facts for the export record: architecture, tensor count, types used.
    """
    import gguf
    import numpy as np

    if quant not in QUANTS:
        raise PolyadaptError(
            f"--quant {quant!r} is not a GGUF type polyadapt writes; choose one of {', '.join(QUANTS)}"
        )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    check_supported(config)
    layout = ARCHITECTURES[config["model_type"]]
    arch = getattr(gguf.MODEL_ARCH, layout.gguf_arch)
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    qtype_name, file_type = QUANTS[quant]

    n_layers = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_head)
    vocab_size = int(config["vocab_size"])
    tokens, token_types, pre, adds_bos = _vocabulary(folder, vocab_size)
    pre = pre_tokenizer or pre

    # tensors wait in a temporary file (spilled to disk past 256 MB), not all in memory
    writer = gguf.GGUFWriter(str(output), arch_name, use_temp_file=True)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(hidden)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_freq_base(_rope_theta(config))
    if layout.rope_dimension_count:
        writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(vocab_size)
    writer.add_file_type(getattr(gguf.LlamaFileType, file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise unsupported("a BPE tokenizer without merges in tokenizer.json")
    special.add_to_gguf(writer, quiet=True)
    # said outright: llama.cpp's default for a BPE vocabulary would otherwise decide them
    written_keys = writer.kv_data[0]
    if gguf.Keys.Tokenizer.ADD_BOS not in written_keys:
        writer.add_add_bos_token(adds_bos)
    if gguf.Keys.Tokenizer.ADD_PREFIX not in written_keys:
        writer.add_add_space_prefix(False)  # byte-level BPE marks spaces itself

    names = gguf.get_tensor_name_map(arch, n_layers)
    tied = bool(config.get("tie_word_embeddings", False))
    written: dict[str, int] = {}
    for hf_name, data in _tensors(folder):
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the embedding as the output when output.weight is absent
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise unsupported(f"tensor {hf_name!r}, which llama.cpp's {arch_name} has no place for")
        data = np.ascontiguousarray(transform(layout, hf_name, data, n_head, n_head_kv))
        kind = tensor_type(new_name, data.shape, qtype_name, output_like=tied and new_name == "token_embd.weight")
        if kind in ("F32", "F16"):
            writer.add_tensor(new_name, data.astype(np.float32 if kind == "F32" else np.float16))
        else:
            raw = getattr(gguf.GGMLQuantizationType, kind)
            writer.add_tensor(new_name, gguf.quants.quantize(data, raw), raw_dtype=raw)
        written[kind] = written.get(kind, 0) + 1

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "architecture": arch_name,
        "quant": quant,
        "pre_tokenizer": pre,
        "tensor_types": written,
        "tensors": sum(written.values()),
    }
