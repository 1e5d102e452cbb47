"""Adapters carry their provenance: run id and dataset root hash inside the adapter files.

:func:`stamp_adapter` writes ``polyadapt.run_id``, ``polyadapt.dataset_root``,
``polyadapt.weights_hash`` (and any extra keys) into the metadata of every ``*.safetensors``
file of an adapter folder, and the same block into ``polyadapt_provenance.json`` beside them.
``adapter_config.json`` stays plain PEFT: plain ``PeftModel.from_pretrained`` loads it without
a warning, and its ``base_model_name_or_path`` names the base the user gave, never a private
cache folder. Adapters stamped by polyadapt 0.2 and earlier carry the block as a
``"polyadapt"`` key inside ``adapter_config.json``; :func:`read_provenance` still reads it, and
stamping such an adapter again moves it out.

The safetensors files are rewritten at the byte level: the header (a JSON object whose
``__metadata__`` maps strings to strings) is replaced and the tensor bytes are copied
unchanged, so any dtype (bf16 included) survives and neither torch nor numpy is needed.
Each rewrite goes through a temporary file and a rename: a file is whole or unchanged.

:func:`weights_hash` hashes the tensors only (names, dtypes, shapes and bytes, in name
order), so stamping metadata never changes it and two bit-identical adapters have the same
hash whatever their metadata says.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from polyadapt.errors import PolyadaptError

METADATA_PREFIX = "polyadapt."
#: The key of the provenance block inside adapter_config.json (polyadapt 0.2 and earlier).
CONFIG_KEY = "polyadapt"
ADAPTER_CONFIG = "adapter_config.json"
#: The provenance block beside the weights, for people and tools that do not read safetensors headers.
PROVENANCE_FILE = "polyadapt_provenance.json"
_RESERVED = ("run_id", "dataset_root", "weights_hash")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_CHUNK = 1 << 20


def _read_header(handle: BinaryIO, path: Path) -> tuple[dict[str, Any], int]:
    """(header, offset of the tensor data) of the safetensors file open in ``handle``."""
    raw = handle.read(8)
    if len(raw) != 8:
        raise PolyadaptError(f"{path}: not a safetensors file (shorter than its header size)")
    size = int.from_bytes(raw, "little")
    if size > _MAX_HEADER:
        raise PolyadaptError(f"{path}: not a safetensors file (header size {size} is implausible)")
    try:
        header = json.loads(handle.read(size))
    except (UnicodeDecodeError, ValueError):
        raise PolyadaptError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise PolyadaptError(f"{path}: not a safetensors file (its header is not an object)")
    return header, 8 + size


def _safetensors_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PolyadaptError(f"{path}: no such adapter folder")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise PolyadaptError(
            f"{path}: the adapter folder holds no *.safetensors file; polyadapt adapters are safetensors "
            "(save_pretrained(safe_serialization=True)) so that lineage can hash and stamp them"
        )
    return files


def weights_hash(adapter_dir: Path) -> str:
    """SHA-256 over the tensors of every ``*.safetensors`` in ``adapter_dir`` (or of one file):
    names, dtypes, shapes and bytes in name order; metadata does not count."""
    entries: list[tuple[str, Path, dict[str, Any], int]] = []
    seen: dict[str, Path] = {}
    for file in _safetensors_files(Path(adapter_dir)):
        with open(file, "rb") as handle:
            header, offset = _read_header(handle, file)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if name in seen:
                raise PolyadaptError(f"tensor {name!r} is in both {seen[name].name} and {file.name}")
            seen[name] = file
            entries.append((name, file, info, offset))
    digest = hashlib.sha256(b"polyadapt-weights-v1\n")
    with contextlib.ExitStack() as stack:
        handles = {file: stack.enter_context(open(file, "rb")) for file in set(seen.values())}
        for name, file, info, offset in sorted(entries, key=lambda e: e[0]):
            begin, end = info["data_offsets"]
            desc = json.dumps([name, info["dtype"], info["shape"], end - begin], separators=(",", ":")).encode()
            digest.update(len(desc).to_bytes(8, "little") + desc)
            handle = handles[file]
            handle.seek(offset + begin)
            left = end - begin
            while left > 0:
                chunk = handle.read(min(_CHUNK, left))
                if not chunk:
                    raise PolyadaptError(f"{file}: truncated (tensor {name!r} runs past the end)")
                digest.update(chunk)
                left -= len(chunk)
    return digest.hexdigest()


def _replace_keeping_mode(target: Path, write: Any) -> None:
    """Write a new version of ``target`` through ``write(handle)`` and a temporary file, then rename."""
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _rewrite_metadata(path: Path, updates: dict[str, str]) -> None:
    """Replace the ``polyadapt.*`` metadata of one safetensors file, keeping everything else."""
    with open(path, "rb") as source:
        header, offset = _read_header(source, path)
        metadata = {
            key: value
            for key, value in (header.get("__metadata__") or {}).items()
            if not key.startswith(METADATA_PREFIX)
        }
        metadata.update(updates)
        new_header = {"__metadata__": metadata}
        new_header.update((key, value) for key, value in header.items() if key != "__metadata__")
        blob = json.dumps(new_header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # safetensors pads its header to 8 bytes

        def write(out: BinaryIO) -> None:
            out.write(len(blob).to_bytes(8, "little"))
            out.write(blob)
            source.seek(offset)
            shutil.copyfileobj(source, out, _CHUNK)

        _replace_keeping_mode(path, write)


def _as_metadata_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def stamp_adapter(
    adapter_dir: Path,
    *,
    run_id: str,
    dataset_root: str,
    extra: dict[str, Any] | None = None,
    base_reference: str | None = None,
) -> dict[str, Any]:
    """Write the provenance block into the adapter's safetensors metadata and provenance file.

    The block is ``{"run_id", "dataset_root", "weights_hash", **extra}``; safetensors
    metadata holds each key as ``polyadapt.KEY`` (strings; other values as JSON), and
    ``polyadapt_provenance.json`` holds the block as JSON. Stamping again replaces the
    previous block. Returns the block. ``extra`` must hold no record content: it travels
    with the adapter.

    ``adapter_config.json``, when there is one, loses any provenance block an earlier
    version put there, and with ``base_reference`` (the base as the user named it) its
    ``base_model_name_or_path`` is set to it when the library recorded one.
    """
    adapter_dir = Path(adapter_dir)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise PolyadaptError(f"stamp_adapter: extra may not set {', '.join(clash)}; they are set from the run")
    files = _safetensors_files(adapter_dir)
    block = {"run_id": run_id, "dataset_root": dataset_root, "weights_hash": weights_hash(adapter_dir), **extra}
    updates = {f"{METADATA_PREFIX}{key}": _as_metadata_value(value) for key, value in block.items()}
    for file in files:
        _rewrite_metadata(file, updates)
    if not adapter_dir.is_dir():
        return block
    _write_json(adapter_dir / PROVENANCE_FILE, block)
    config_path = adapter_dir / ADAPTER_CONFIG
    if config_path.is_file():
        config = _read_config(config_path)
        config.pop(CONFIG_KEY, None)
        if base_reference and config.get("base_model_name_or_path"):
            config["base_model_name_or_path"] = base_reference
        _write_json(config_path, config)
    return block


def move_old_block_out(adapter_dir: Path, base_reference: str | None = None) -> bool:
    """Move the provenance block polyadapt 0.2 put in adapter_config.json into
    ``polyadapt_provenance.json`` (and ``base_model_name_or_path`` to ``base_reference``).

    The weights are not touched, so the weights hash and the registry stay valid. Returns
    whether anything changed.
    """
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / ADAPTER_CONFIG
    if not config_path.is_file():
        return False
    config = _read_config(config_path)
    block = config.pop(CONFIG_KEY, None)
    moved_base = bool(base_reference and config.get("base_model_name_or_path") not in (None, "", base_reference))
    if not isinstance(block, dict) and not moved_base:
        return False
    if isinstance(block, dict) and not (adapter_dir / PROVENANCE_FILE).is_file():
        _write_json(adapter_dir / PROVENANCE_FILE, block)
    if moved_base:
        config["base_model_name_or_path"] = base_reference
    _write_json(config_path, config)
    return True


def _read_config(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PolyadaptError(f"{config_path}: not valid JSON; the adapter is damaged") from None
    if not isinstance(config, dict):
        raise PolyadaptError(f"{config_path}: not a JSON object; the adapter is damaged")
    return config


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as peft lays out its configs (indented, sorted), atomically."""
    from polyadapt.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of one safetensors file (strings to strings)."""
    path = Path(path)
    with open(path, "rb") as handle:
        header, _ = _read_header(handle, path)
    return dict(header.get("__metadata__") or {})


def read_provenance(adapter_dir: Path) -> dict[str, Any]:
    """The provenance an adapter carries.

    Returns ``{"run_id", "dataset_root", "weights_hash", ...}`` (from
    ``polyadapt_provenance.json``, else from an earlier version's block in
    adapter_config.json, else from the safetensors metadata, as strings) plus ``"files"``
    (each safetensors file's ``polyadapt.*`` metadata), ``"config"`` (the JSON block or None)
    and ``"intact"`` (whether the tensors still hash to the stamped weights hash; None when
    nothing was stamped).
    """
    adapter_dir = Path(adapter_dir)
    files: dict[str, dict[str, str]] = {}
    for file in _safetensors_files(adapter_dir):
        metadata = read_safetensors_metadata(file)
        files[file.name] = {
            key[len(METADATA_PREFIX) :]: value for key, value in metadata.items() if key.startswith(METADATA_PREFIX)
        }
    config_block = None
    if adapter_dir.is_dir():
        config_block = _json_block(adapter_dir / PROVENANCE_FILE, None)
        if config_block is None:
            config_block = _json_block(adapter_dir / ADAPTER_CONFIG, CONFIG_KEY)
    merged: dict[str, Any] = dict(next(iter(files.values()), {}))
    if isinstance(config_block, dict):
        merged = dict(config_block)
    stamped = merged.get("weights_hash")
    intact = None if stamped is None else stamped == weights_hash(adapter_dir)
    return {**merged, "files": files, "config": config_block, "intact": intact}


def _json_block(path: Path, key: str | None) -> dict[str, Any] | None:
    """The JSON object in ``path`` (or its ``key``); None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    block = data.get(key) if key is not None and isinstance(data, dict) else data
    return block if isinstance(block, dict) else None
