"""Write a Hugging Face causal LM folder as one GGUF file (llama.cpp, Ollama, LM Studio).

What llama.cpp's ``convert_hf_to_gguf.py`` does for its ``LlamaModel``, written with the
``gguf`` package: the hyperparameters under ``llama.*``, the byte-level BPE tokenizer
(tokens, token types, merges, special token ids, chat template: ``gguf.SpecialVocab``
reads them from the folder as llama.cpp does), the tensors renamed by
``gguf.TensorNameMap`` with the Q and K projections permuted into llama.cpp's rotary
layout, 1-D tensors in f32 and the others in f16 or q8_0 (``gguf.quants``). transformers'
GGUF loader undoes exactly these steps (``from_pretrained(folder, gguf_file=...)``), which
is how :mod:`polyadapt_text.export` checks every file it writes.

Only the Llama family (SmolLM2, Llama 2 and 3 without rope scaling, TinyLlama) is written;
other architectures are refused by name, with ``--format merged`` as the way out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError

#: transformers ``model_type`` -> the architecture written (gguf's ``MODEL_ARCH`` member).
SUPPORTED_ARCHITECTURES = {"llama": "LLAMA"}
#: ``--quant`` -> (gguf quantization type of 2-D tensors, ``general.file_type``), by name in the gguf package.
QUANTS = {"f16": ("F16", "MOSTLY_F16"), "q8_0": ("Q8_0", "MOSTLY_Q8_0")}


def unsupported(what: str) -> PolyadaptError:
    """The error for a model the GGUF writer cannot write, naming the way out."""
    return PolyadaptError(
        f"cannot export this model as GGUF: {what}. GGUF export supports the architectures "
        f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))} (SmolLM2, Llama, TinyLlama); export it with "
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
    for flag in ("attention_bias", "mlp_bias"):
        if config.get(flag):
            raise unsupported(f"{model_type} with {flag}")


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        return float(rope["rope_theta"])
    return float(config.get("rope_theta", 10000.0))


def permute(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """llama.cpp's ``LlamaModel.permute``: Hugging Face's rotary layout (halves) -> GGML's
    (interleaved pairs), per head; K uses the key/value head count."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer (``tokenizer.ggml.pre``).

    llama.cpp recognises a pre-tokenizer by hashing how it splits a probe text; the two
    byte-level ones Llama-family small models use are read off ``tokenizer.json`` here:
    ``gpt-2`` (byte-level with GPT-2's regex) and ``smollm`` (each digit alone, then GPT-2's).
    """
    spec = tokenizer_json.get("pre_tokenizer") or {}
    parts = spec.get("pretokenizers", []) if spec.get("type") == "Sequence" else [spec]
    kinds = [part.get("type") for part in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
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
            types.append(gguf.TokenType.CONTROL if decoder[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]
    return tokens, types, pre, adds_bos


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

    :param quant: ``f16`` or ``q8_0`` (the type of every 2-D tensor; 1-D ones stay f32, and
        a q8_0 tensor whose rows are not a multiple of 32 long is written f16).
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
    arch = getattr(gguf.MODEL_ARCH, SUPPORTED_ARCHITECTURES[config["model_type"]])
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    qtype_name, file_type = QUANTS[quant]
    qtype = getattr(gguf.GGMLQuantizationType, qtype_name)

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
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, n_head, n_head_kv)
        data = np.ascontiguousarray(data)
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            kind = gguf.GGMLQuantizationType.F32
            writer.add_tensor(new_name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0:
            kind = qtype
            writer.add_tensor(new_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            kind = gguf.GGMLQuantizationType.F16
            writer.add_tensor(new_name, data.astype(np.float16))
        written[kind.name] = written.get(kind.name, 0) + 1

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
