"""CTranslate2 (faster-whisper) Whisper folders → openai-whisper checkpoints, without ctranslate2.

A CTranslate2 model folder holds ``config.json`` (alignment heads, suppressed tokens),
``model.bin`` (every weight) and the vocabulary (``vocabulary.txt`` / ``tokenizer.json``).
``model.bin`` is CTranslate2's own binary layout (``ModelSpec._serialize``, binary version 6;
little-endian)::

    u32 binary version | string spec name | u32 spec revision | u32 variable count
    per variable: string name | u8 rank | u32 dims[rank] | u8 dtype | u32 byte count | bytes
    u32 alias count | per alias: string alias | string variable it stands for

where a string is ``u16 length (with the closing NUL) | utf-8 bytes | NUL`` and dtype is an
index into (float32, int8, int16, int32, float16, bfloat16). int8/int16 weights come with a
``<name>_scale`` variable and are dequantised here (``value / scale``).

:func:`convert_ct2` maps ``WhisperSpec`` onto :class:`whisper.model.Whisper`:

* self-attention ``linear_0`` fuses query, key and value into one (3d, d) matrix and
  cross-attention ``linear_1`` fuses key and value into one (2d, d) matrix: both are split.
  Whisper's key projection has no bias; CTranslate2 stores zeros there. A non-zero key bias
  would not change the model anyway (it adds the same number to every attention logit of
  a query, which softmax ignores), so it is dropped.
* the small integer settings (``num_heads``, ``pre_norm``, ``activation``, ``alibi``,
  ``alignment_heads``/``alignment_layer``...) are not weights: the ones that must hold for a
  Whisper are checked, ``num_heads`` gives the head counts, the rest are skipped.
* both position tables are stored (the encoder's sinusoids too, in the file's dtype,
  usually fp16) and are taken as stored, not recomputed, so the converted model computes
  exactly what the CTranslate2 one does.
* the output projection is an alias of the token embedding (Whisper ties them).
* alignment heads (for word timestamps) are not in ``model.bin``; ``config.json`` usually
  lists them. They go into the checkpoint under ``alignment_heads`` (whisper's base85
  gzip form) and :func:`polyadapt_speech.model.load_whisper` applies them;
  ``whisper.load_model`` ignores the extra key and uses its default heads.

The converted checkpoint (fp32) is cached once per ``model.bin`` (path, size, mtime) under
``$POLYADAPT_CACHE/whisper/`` (default ``~/.cache/polyadapt``), as the text plugin caches
its GGUF conversions. :func:`save_ct2` writes the reverse (whisper → CTranslate2 folder),
which the tests use to build a tiny CTranslate2 model.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from polyadapt.errors import ConfigError
from polyadapt.pretrained import cache_root

BINARY_VERSIONS = (5, 6)
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SPEC_NAME = "WhisperSpec"
#: Settings a WhisperSpec must hold for the converted model to compute the same thing.
REQUIRED_SETTINGS = {"pre_norm": 1, "alibi": 0, "scale_embeddings": 0, "activation": 3}
#: Rank-0 settings that carry nothing whisper needs (beyond the checks above).
SKIPPED_SETTINGS = (
    "alignment_heads",
    "alignment_layer",
    "start_from_zero_embedding",
    "rotary_dim",
    "rotary_interleave",
    "multi_query",
    "layer_norm_epsilon",
)



def is_ct2_folder(path: Path | str) -> bool:
    """Whether ``path`` is a folder holding a CTranslate2 ``model.bin``."""
    path = Path(path)
    return path.is_dir() and (path / "model.bin").is_file()


# ---------------------------------------------------------------------------------------
# model.bin
# ---------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ConfigError(f"base_model.id: {self.path} is truncated or not a CTranslate2 model.bin")
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        return raw[:-1].decode("utf-8") if raw.endswith(b"\0") else raw.decode("utf-8")


def read_model_bin(path: Path | str) -> tuple[str, int, dict[str, np.ndarray]]:
    """(spec name, spec revision, variables) of a CTranslate2 ``model.bin``.

    Aliases are resolved (an alias maps to the same array as its target). int8/int16
    weights stay as stored; :func:`dequantised` turns them into float32.
    """
    path = Path(path)
    reader = _Reader(path.read_bytes(), path)
    version = reader.unpack("I")
    if version not in BINARY_VERSIONS:
        raise ConfigError(
            f"base_model.id: {path} has CTranslate2 binary version {version}; "
            f"this reader knows {', '.join(map(str, BINARY_VERSIONS))}"
        )
    name = reader.string()
    revision = reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        var_name = reader.string()
        shape = [reader.unpack("I") for _ in range(reader.unpack("B"))]
        type_id = reader.unpack("B")
        if type_id >= len(DTYPES):
            raise ConfigError(f"base_model.id: {path}: variable {var_name} has unknown dtype id {type_id}")
        raw = reader.take(reader.unpack("I"))
        dtype = DTYPES[type_id]
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's top half
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        variables[var_name] = array.reshape(shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise ConfigError(f"base_model.id: {path}: alias {alias} points at missing variable {target}")
        variables[alias] = variables[target]
    return name, revision, variables


def dequantised(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Variable ``name`` as float32 (int8 rows and int16 weights divided by their scale)."""
    value = variables[name]
    if value.dtype in (np.int8, np.int16):
        scale = variables.get(f"{name}_scale")
        if scale is None:
            raise ConfigError(f"CTranslate2 variable {name} is {value.dtype} without a {name}_scale")
        scale = np.asarray(scale, dtype=np.float32)
        return value.astype(np.float32) / (scale.reshape(-1, *([1] * (value.ndim - 1))) if scale.ndim else scale)
    return value.astype(np.float32)


def write_model_bin(
    path: Path | str, name: str, revision: int, variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None
) -> None:
    """Write ``variables`` (and ``aliases``: alias → variable) in CTranslate2's layout (version 6)."""

    def string(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack("<H", len(raw) + 1) + raw + b"\0"

    parts = [struct.pack("<I", 6), string(name), struct.pack("<I", revision), struct.pack("<I", len(variables))]
    for var_name in sorted(variables):
        array = np.array(variables[var_name], order="C")
        parts += [
            string(var_name),
            struct.pack("<B", array.ndim),
            *(struct.pack("<I", d) for d in array.shape),
            struct.pack("<B", DTYPES.index(array.dtype.name)),
            struct.pack("<I", array.nbytes),
            array.astype(array.dtype.newbyteorder("<")).tobytes(),
        ]
    parts.append(struct.pack("<I", len(aliases or {})))
    for alias, target in sorted((aliases or {}).items()):
        parts += [string(alias), string(target)]
    Path(path).write_bytes(b"".join(parts))


# ---------------------------------------------------------------------------------------
# WhisperSpec ⇄ whisper.model.Whisper
# ---------------------------------------------------------------------------------------


def _layer_count(variables: dict[str, np.ndarray], side: str) -> int:
    count = 0
    while f"{side}/layer_{count}/ffn/linear_0/weight" in variables:
        count += 1
    return count


def _scalar(variables: dict[str, np.ndarray], name: str) -> int | None:
    value = variables.get(name)
    return None if value is None else int(np.asarray(value).reshape(-1)[0])


def _heads(variables: dict[str, np.ndarray], side: str, width: int) -> int:
    heads = _scalar(variables, f"{side}/num_heads")
    return heads if heads else max(1, width // 64)  # every released Whisper has 64-wide heads


def _norm(state: dict, target: str, variables: dict, source: str, used: set) -> None:
    state[f"{target}.weight"] = dequantised(variables, f"{source}/gamma")
    state[f"{target}.bias"] = dequantised(variables, f"{source}/beta")
    used.update({f"{source}/gamma", f"{source}/beta"})


def _linear(variables: dict, source: str, used: set) -> tuple[np.ndarray, np.ndarray | None]:
    used.update(n for n in (f"{source}/weight", f"{source}/weight_scale", f"{source}/bias") if n in variables)
    bias = dequantised(variables, f"{source}/bias") if f"{source}/bias" in variables else None
    return dequantised(variables, f"{source}/weight"), bias


def _put(state: dict, target: str, weight: np.ndarray, bias: np.ndarray | None, with_bias: bool = True) -> None:
    state[f"{target}.weight"] = weight
    if with_bias:
        state[f"{target}.bias"] = bias if bias is not None else np.zeros(weight.shape[0], np.float32)


def _block(state: dict, variables: dict, src: str, dst: str, cross: bool, used: set) -> None:
    _norm(state, f"{dst}.attn_ln", variables, f"{src}/self_attention/layer_norm", used)
    weight, bias = _linear(variables, f"{src}/self_attention/linear_0", used)
    d = weight.shape[1]
    if weight.shape[0] != 3 * d:
        raise ConfigError(f"CTranslate2 {src}/self_attention/linear_0 is {weight.shape}, not fused q/k/v (3d, d)")
    bias = bias if bias is not None else np.zeros(3 * d, np.float32)
    _put(state, f"{dst}.attn.query", weight[:d], bias[:d])
    _put(state, f"{dst}.attn.key", weight[d : 2 * d], None, with_bias=False)  # key bias: see module doc
    _put(state, f"{dst}.attn.value", weight[2 * d :], bias[2 * d :])
    _put(state, f"{dst}.attn.out", *_linear(variables, f"{src}/self_attention/linear_1", used))
    if cross:
        _norm(state, f"{dst}.cross_attn_ln", variables, f"{src}/attention/layer_norm", used)
        _put(state, f"{dst}.cross_attn.query", *_linear(variables, f"{src}/attention/linear_0", used))
        weight, bias = _linear(variables, f"{src}/attention/linear_1", used)
        if weight.shape[0] != 2 * d:
            raise ConfigError(f"CTranslate2 {src}/attention/linear_1 is {weight.shape}, not fused k/v (2d, d)")
        bias = bias if bias is not None else np.zeros(2 * d, np.float32)
        _put(state, f"{dst}.cross_attn.key", weight[:d], None, with_bias=False)
        _put(state, f"{dst}.cross_attn.value", weight[d:], bias[d:])
        _put(state, f"{dst}.cross_attn.out", *_linear(variables, f"{src}/attention/linear_2", used))
    _norm(state, f"{dst}.mlp_ln", variables, f"{src}/ffn/layer_norm", used)
    _put(state, f"{dst}.mlp.0", *_linear(variables, f"{src}/ffn/linear_0", used))
    _put(state, f"{dst}.mlp.2", *_linear(variables, f"{src}/ffn/linear_1", used))


def ct2_to_whisper_state(variables: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(whisper ``ModelDimensions`` fields, whisper ``state_dict`` as float32 arrays)."""
    for setting, wanted in REQUIRED_SETTINGS.items():
        for side in ("encoder", "decoder"):
            value = _scalar(variables, f"{side}/{setting}")
            if value is not None and value != wanted:
                raise ConfigError(f"CTranslate2 {side}/{setting} is {value}; a Whisper model has {wanted}")
    used: set[str] = set()
    state: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _put(state, f"encoder.{conv}", *_linear(variables, f"encoder/{conv}", used))
    state["encoder.positional_embedding"] = dequantised(variables, "encoder/position_encodings/encodings")
    n_audio_layer, n_text_layer = _layer_count(variables, "encoder"), _layer_count(variables, "decoder")
    for i in range(n_audio_layer):
        _block(state, variables, f"encoder/layer_{i}", f"encoder.blocks.{i}", False, used)
    _norm(state, "encoder.ln_post", variables, "encoder/layer_norm", used)
    state["decoder.token_embedding.weight"] = dequantised(variables, "decoder/embeddings/weight")
    state["decoder.positional_embedding"] = dequantised(variables, "decoder/position_encodings/encodings")
    for i in range(n_text_layer):
        _block(state, variables, f"decoder/layer_{i}", f"decoder.blocks.{i}", True, used)
    _norm(state, "decoder.ln", variables, "decoder/layer_norm", used)
    used.update(
        {"encoder/position_encodings/encodings", "decoder/embeddings/weight", "decoder/position_encodings/encodings"}
    )
    projection = variables.get("decoder/projection/weight")
    if projection is not None:
        used.add("decoder/projection/weight")
        if projection is not variables["decoder/embeddings/weight"] and not np.array_equal(
            projection, variables["decoder/embeddings/weight"]
        ):
            raise ConfigError(
                "CTranslate2 decoder/projection/weight differs from the token embedding; openai-whisper ties the two"
            )
    used.update(n for n in variables if n.endswith("/weight_scale") and n[: -len("_scale")] in used)
    leftover = [n for n, v in variables.items() if n not in used and np.asarray(v).ndim > 0]
    if leftover:
        raise ConfigError(
            f"CTranslate2 model holds weights a Whisper has no place for: {', '.join(sorted(leftover)[:5])}"
        )

    conv1 = state["encoder.conv1.weight"]
    n_audio_state, n_text_state = conv1.shape[0], state["decoder.token_embedding.weight"].shape[1]
    dims = {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": state["encoder.positional_embedding"].shape[0],
        "n_audio_state": n_audio_state,
        "n_audio_head": _heads(variables, "encoder", n_audio_state),
        "n_audio_layer": n_audio_layer,
        "n_vocab": state["decoder.token_embedding.weight"].shape[0],
        "n_text_ctx": state["decoder.positional_embedding"].shape[0],
        "n_text_state": n_text_state,
        "n_text_head": _heads(variables, "decoder", n_text_state),
        "n_text_layer": n_text_layer,
    }
    return dims, state


def alignment_heads_dump(heads: list[list[int]], n_text_layer: int, n_text_head: int) -> bytes:
    """``config.json``'s ``[[layer, head], ...]`` in the form ``Whisper.set_alignment_heads`` takes."""
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in heads:
        mask[int(layer), int(head)] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def convert_ct2(folder: Path | str, output: Path | str) -> Path:
    """Convert the CTranslate2 Whisper ``folder`` into an openai-whisper checkpoint ``output`` (.pt)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    folder = Path(folder)
    name, _revision, variables = read_model_bin(folder / "model.bin")
    if name != SPEC_NAME:
        raise ConfigError(f"base_model.id: {folder} holds a CTranslate2 {name}, not a {SPEC_NAME}")
    dims, arrays = ct2_to_whisper_state(variables)
    model = Whisper(ModelDimensions(**dims))
    expected = model.state_dict()
    state = {key: torch.from_numpy(np.array(value, dtype=np.float32)) for key, value in arrays.items()}
    mismatched = sorted(set(state) ^ set(expected))
    shapes = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if mismatched or shapes:
        raise ConfigError(
            f"base_model.id: {folder}: converted weights do not fit a Whisper of {dims}: {(mismatched + shapes)[:5]}"
        )
    checkpoint: dict[str, Any] = {
        "dims": asdict(ModelDimensions(**dims)),
        "model_state_dict": state,
        "source": {"format": "ctranslate2", "spec": name, "revision": _revision},
    }
    config_file = folder / "config.json"
    if config_file.is_file():
        heads = json.loads(config_file.read_text()).get("alignment_heads")
        if heads:
            checkpoint["alignment_heads"] = alignment_heads_dump(heads, dims["n_text_layer"], dims["n_text_head"])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, output)
    return output


def _cache_dir(folder: Path) -> Path:
    model_bin = (folder / "model.bin").resolve()
    stat = model_bin.stat()
    digest = hashlib.sha256(f"{model_bin}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    label = folder.resolve().name or "ct2"
    return cache_root() / "whisper" / f"{label}-{digest}"


def converted_checkpoint(folder: Path | str) -> Path:
    """The openai-whisper checkpoint of CTranslate2 ``folder``, converting it once into the cache."""
    from polyadapt.fileio import atomic_directory

    folder = Path(folder)
    target = _cache_dir(folder)
    if (target / "model.pt").is_file():
        return target / "model.pt"
    print(
        f"polyadapt: converting CTranslate2 model {folder} to an openai-whisper checkpoint once (cached in {target})",
        file=sys.stderr,
        flush=True,
    )
    with atomic_directory(target) as tmp:
        convert_ct2(folder, tmp / "model.pt")
    return target / "model.pt"


def apply_alignment_heads(model: Any, checkpoint_file: Path | str) -> None:
    """Set the alignment heads a converted checkpoint carries (no-op for other checkpoints)."""
    import torch

    try:  # mmap: only the small entries are read
        checkpoint = torch.load(str(checkpoint_file), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (non-zip) torch file cannot be mapped
        checkpoint = torch.load(str(checkpoint_file), map_location="cpu", weights_only=True)
    dump = checkpoint.get("alignment_heads") if isinstance(checkpoint, dict) else None
    if dump:
        model.set_alignment_heads(dump)


def save_ct2(model: Any, folder: Path | str, *, dtype: str = "float32", alignment_heads: list | None = None) -> Path:
    """Write whisper ``model`` as a CTranslate2 WhisperSpec folder (revision 3, fused projections).

    ``dtype``: float32, float16 or int8 (weights of linear layers quantised per row, as
    CTranslate2's ``int8`` quantisation does). Used by the tests to make a CTranslate2 model.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    dims = model.dims
    store = np.float16 if dtype == "float16" else np.float32
    variables: dict[str, np.ndarray] = {}

    def put(name: str, value: np.ndarray, quantisable: bool = False) -> None:
        if quantisable and dtype == "int8":
            amax = np.abs(value).max(axis=1)
            amax[amax == 0] = 127.0
            scale = (127.0 / amax).astype(np.float32)
            variables[name] = np.rint(value * scale[:, None]).astype(np.int8)
            variables[f"{name}_scale"] = scale
        else:
            variables[name] = value.astype(store)

    def linear(dst: str, weight: np.ndarray, bias: np.ndarray | None) -> None:
        put(f"{dst}/weight", weight, quantisable=True)
        if bias is not None:
            put(f"{dst}/bias", bias)

    def norm(dst: str, src: str) -> None:
        put(f"{dst}/gamma", state[f"{src}.weight"])
        put(f"{dst}/beta", state[f"{src}.bias"])

    def block(src: str, dst: str, cross: bool) -> None:
        norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
        a = f"{src}.attn"
        zeros = np.zeros_like(state[f"{a}.query.bias"])
        linear(
            f"{dst}/self_attention/linear_0",
            np.concatenate([state[f"{a}.query.weight"], state[f"{a}.key.weight"], state[f"{a}.value.weight"]]),
            np.concatenate([state[f"{a}.query.bias"], zeros, state[f"{a}.value.bias"]]),
        )
        linear(f"{dst}/self_attention/linear_1", state[f"{a}.out.weight"], state[f"{a}.out.bias"])
        if cross:
            c = f"{src}.cross_attn"
            norm(f"{dst}/attention/layer_norm", f"{src}.cross_attn_ln")
            linear(f"{dst}/attention/linear_0", state[f"{c}.query.weight"], state[f"{c}.query.bias"])
            linear(
                f"{dst}/attention/linear_1",
                np.concatenate([state[f"{c}.key.weight"], state[f"{c}.value.weight"]]),
                np.concatenate([zeros, state[f"{c}.value.bias"]]),
            )
            linear(f"{dst}/attention/linear_2", state[f"{c}.out.weight"], state[f"{c}.out.bias"])
        norm(f"{dst}/ffn/layer_norm", f"{src}.mlp_ln")
        linear(f"{dst}/ffn/linear_0", state[f"{src}.mlp.0.weight"], state[f"{src}.mlp.0.bias"])
        linear(f"{dst}/ffn/linear_1", state[f"{src}.mlp.2.weight"], state[f"{src}.mlp.2.bias"])

    for conv in ("conv1", "conv2"):
        put(f"encoder/{conv}/weight", state[f"encoder.{conv}.weight"])
        put(f"encoder/{conv}/bias", state[f"encoder.{conv}.bias"])
    put("encoder/position_encodings/encodings", state["encoder.positional_embedding"])
    for i in range(dims.n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", False)
    norm("encoder/layer_norm", "encoder.ln_post")
    put("decoder/embeddings/weight", state["decoder.token_embedding.weight"])
    put("decoder/position_encodings/encodings", state["decoder.positional_embedding"])
    for i in range(dims.n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", True)
    norm("decoder/layer_norm", "decoder.ln")
    # the small settings CTranslate2 keeps beside the weights (int8 / int16 scalars)
    variables["encoder/num_heads"] = np.array(dims.n_audio_head, dtype=np.int16)
    variables["decoder/num_heads"] = np.array(dims.n_text_head, dtype=np.int16)
    variables["decoder/pre_norm"] = np.array(1, dtype=np.int8)
    variables["decoder/activation"] = np.array(3, dtype=np.int8)
    for setting in ("alibi", "scale_embeddings", "start_from_zero_embedding"):
        variables[f"decoder/{setting}"] = np.array(0, dtype=np.int8)
    variables["decoder/alignment_heads"] = np.array(1, dtype=np.int16)
    variables["decoder/alignment_layer"] = np.array(-1, dtype=np.int16)
    write_model_bin(
        folder / "model.bin",
        SPEC_NAME,
        3,
        variables,
        aliases={"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    config = {"suppress_ids": [], "suppress_ids_begin": [220, 50256]}
    if alignment_heads is not None:
        config["alignment_heads"] = alignment_heads
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
