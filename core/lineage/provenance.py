"""Adapters carry their provenance: run id and dataset root hash inside the adapter files.

:func:`stamp_adapter` writes ``polyadapt.run_id``, ``polyadapt.dataset_root``,
``polyadapt.weights_hash`` (and any extra keys) into the metadata of every ``*.safetensors``
file of an adapter folder, and a ``"polyadapt": {...}`` block into ``adapter_config.json``.

The safetensors files are rewritten at the byte level: the header (a JSON object whose
``__metadata__`` maps strings to strings) is replaced and the tensor bytes are copied
unchanged, so any dtype (bf16 included) survives and neither torch nor numpy is needed.
Each rewrite goes through a temporary file and a rename: a file is whole or unchanged.

peft 0.21 loads an ``adapter_config.json`` with the extra ``polyadapt`` key
(``PeftConfig.from_peft_type`` drops unknown keys) but warns "Unexpected keyword arguments
['polyadapt'] ... upgrade PEFT" each time; :func:`silence_peft_provenance_warning` hides
exactly that warning.

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
CONFIG_KEY = "polyadapt"
ADAPTER_CONFIG = "adapter_config.json"
_RESERVED = ("run_id", "dataset_root", "weights_hash")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
_CHUNK = 1 << 20
#: The message peft 0.21 warns with when adapter_config.json holds the provenance block.
PEFT_WARNING_PATTERN = r"Unexpected keyword arguments \['polyadapt'\]"


def silence_peft_provenance_warning() -> None:
    """Hide peft's "unexpected keyword arguments ['polyadapt']" warning (the block is ours)."""
    import warnings

    warnings.filterwarnings("ignore", message=PEFT_WARNING_PATTERN, category=UserWarning)


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
    adapter_dir: Path, *, run_id: str, dataset_root: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the provenance block into the adapter's safetensors metadata and adapter config.

    The block is ``{"run_id", "dataset_root", "weights_hash", **extra}``; safetensors
    metadata holds each key as ``polyadapt.KEY`` (strings; other values as JSON). Stamping
    again replaces the previous block. Returns the block. ``extra`` must hold no record
    content: it travels with the adapter.
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
    config_path = adapter_dir / ADAPTER_CONFIG if adapter_dir.is_dir() else None
    if config_path is not None and config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError:
            raise PolyadaptError(f"{config_path}: not valid JSON; the adapter is damaged") from None
        config[CONFIG_KEY] = block
        text = json.dumps(config, indent=2, sort_keys=True)  # peft's own layout
        _replace_keeping_mode(config_path, lambda handle: handle.write(text.encode("utf-8")))
    return block


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of one safetensors file (strings to strings)."""
    path = Path(path)
    with open(path, "rb") as handle:
        header, _ = _read_header(handle, path)
    return dict(header.get("__metadata__") or {})


def read_provenance(adapter_dir: Path) -> dict[str, Any]:
    """The provenance an adapter carries.

    Returns ``{"run_id", "dataset_root", "weights_hash", ...}`` (from adapter_config.json's
    block when present, else from the safetensors metadata, as strings) plus ``"files"``
    (each safetensors file's ``polyadapt.*`` metadata), ``"config"`` (the config block or
    None) and ``"intact"`` (whether the tensors still hash to the stamped weights hash; None
    when nothing was stamped).
    """
    adapter_dir = Path(adapter_dir)
    files: dict[str, dict[str, str]] = {}
    for file in _safetensors_files(adapter_dir):
        metadata = read_safetensors_metadata(file)
        files[file.name] = {
            key[len(METADATA_PREFIX) :]: value for key, value in metadata.items() if key.startswith(METADATA_PREFIX)
        }
    config_block = None
    config_path = adapter_dir / ADAPTER_CONFIG
    if adapter_dir.is_dir() and config_path.is_file():
        try:
            config_block = json.loads(config_path.read_text(encoding="utf-8")).get(CONFIG_KEY)
        except ValueError:
            config_block = None
    merged: dict[str, Any] = dict(next(iter(files.values()), {}))
    if isinstance(config_block, dict):
        merged = dict(config_block)
    stamped = merged.get("weights_hash")
    intact = None if stamped is None else stamped == weights_hash(adapter_dir)
    return {**merged, "files": files, "config": config_block, "intact": intact}
