"""Checkpoints that make ``--resume`` continue exactly where a run stopped.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` holding the trainable parameters
(safetensors), the optimizer and scheduler states, every RNG state and the data position.
It is written to a temporary folder and renamed, so a crash mid-write leaves the previous
checkpoint as the latest.

Nothing in a checkpoint is a pickle: loading one must never run code, since a run folder
may come from anyone. Each state is stored as ``<part>.json`` (numbers, strings, lists,
dicts, tuples) plus ``<part>.safetensors`` for its tensors and arrays, which the JSON names
as ``{"__tensor__": "state.0.exp_avg"}``. Python floats and ints survive JSON exactly, so a
resumed run stays bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from polyadapt.errors import PolyadaptError
from polyadapt.fileio import atomic_directory

PREFIX = "step-"
#: Version of the JSON state files; a checkpoint with another is refused, not guessed at.
FORMAT = 1
#: Written by polyadapt 0.1 with ``torch.save``: pickles, never loaded.
LEGACY_PICKLES = ("optimizer.pt", "scheduler.pt", "rng.pt")

_TENSOR, _ARRAY, _TUPLE, _INT_KEYS = "__tensor__", "__ndarray__", "__tuple__", "__int_keys__"
_TAGS = {_TENSOR, _ARRAY, _TUPLE, _INT_KEYS}
#: A named run's name stays taken (its folder and lineage record), hence the aside.
_RESTART = "start the run again without --resume (under another output.name if it has one)"


def capture_rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (python, numpy, torch CPU and CUDA)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the RNG states :func:`capture_rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that training changes, by name, as contiguous CPU tensors."""
    return {
        name: param.detach().to("cpu").contiguous() for name, param in model.named_parameters() if param.requires_grad
    }


# -- state <-> JSON + tensors -------------------------------------------------------------


def _child(where: str, key: object) -> str:
    """The path of ``key`` inside ``where``: ``state.0.exp_avg``, ``cuda.1``."""
    return f"{where}.{key}" if where else str(key)


class _Encoder:
    """Turns one state into a JSON value, collecting its tensors and arrays by path."""

    def __init__(self, part: str):
        self.part = part
        self.tensors: dict[str, torch.Tensor] = {}

    def _name(self, where: str) -> str:
        name, n = where, 1
        while name in self.tensors:  # a dict key holding a dot could repeat a path
            name, n = f"{where}#{n}", n + 1
        return name

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, torch.Tensor):
            name = self._name(where)
            self.tensors[name] = value.detach().to("cpu").contiguous()
            return {_TENSOR: name}
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            name = self._name(where)
            self.tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
            return {_ARRAY: name}
        if isinstance(value, tuple):
            return {_TUPLE: [self.encode(v, _child(where, i)) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, _child(where, i)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and not (len(value) == 1 and set(value) <= _TAGS):
                return {k: self.encode(v, _child(where, k)) for k, v in value.items()}
            if all(isinstance(k, int) and not isinstance(k, bool) for k in value):
                return {_INT_KEYS: {str(k): self.encode(v, _child(where, k)) for k, v in value.items()}}
        raise PolyadaptError(
            f"cannot save the {self.part} state in a checkpoint: {where!r} holds a "
            f"{type(value).__name__}, and checkpoints store only tensors, arrays, numbers, strings, "
            "lists, tuples and dicts (never pickles). Use an optimizer and scheduler whose "
            "state_dict holds only those"
        )


def _decode(value: Any, tensors: dict[str, torch.Tensor], source: Path) -> Any:
    """The state :meth:`_Encoder.encode` turned into ``value``; ``source`` is its JSON file."""
    if isinstance(value, list):
        return [_decode(v, tensors, source) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and set(value) <= _TAGS:
        ((tag, inner),) = value.items()
        if tag in (_TENSOR, _ARRAY):
            if not isinstance(inner, str) or inner not in tensors:
                raise _damaged(source, f"it names a tensor {inner!r} that {source.stem}.safetensors does not hold")
            return tensors[inner] if tag == _TENSOR else tensors[inner].numpy()
        if tag == _TUPLE and isinstance(inner, list):
            return tuple(_decode(v, tensors, source) for v in inner)
        if tag == _INT_KEYS and isinstance(inner, dict):
            try:
                return {int(k): _decode(v, tensors, source) for k, v in inner.items()}
            except ValueError:
                raise _damaged(source, f"{tag} holds a key that is not a number") from None
        raise _damaged(source, f"a {tag} entry is malformed")
    return {k: _decode(v, tensors, source) for k, v in value.items()}


def _damaged(file: Path, why: str) -> PolyadaptError:
    checkpoint = file.parent
    return PolyadaptError(
        f"checkpoint file {file} is damaged: {why}. Delete {checkpoint} to resume from the "
        f"checkpoint before it, or {_RESTART}"
    )


def _write_state(folder: Path, part: str, state: Any) -> None:
    encoder = _Encoder(part)
    document = {"format": FORMAT, "state": encoder.encode(state, "")}
    if encoder.tensors:
        save_file(encoder.tensors, str(folder / f"{part}.safetensors"))
    (folder / f"{part}.json").write_text(json.dumps(document), encoding="utf-8")


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _damaged(file, f"it is not a readable safetensors file ({exc})") from None


def _read_json(file: Path) -> Any:
    if not file.is_file():
        raise PolyadaptError(
            f"checkpoint {file.parent} is incomplete: {file.name} is missing. Delete that folder to "
            f"resume from the checkpoint before it, or {_RESTART}"
        )
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(file, f"it is not JSON ({exc})") from None


def _read_state(folder: Path, part: str) -> Any:
    file = folder / f"{part}.json"
    document = _read_json(file)
    if not isinstance(document, dict) or "state" not in document:
        raise _damaged(file, "it holds no 'state'")
    if document.get("format") != FORMAT:
        raise PolyadaptError(
            f"checkpoint file {file} has format {document.get('format')!r}; this polyadapt reads "
            f"format {FORMAT}. Resume with the polyadapt version that wrote it, or {_RESTART}"
        )
    tensors_file = folder / f"{part}.safetensors"
    tensors = _read_tensors(tensors_file) if tensors_file.exists() else {}
    return _decode(document["state"], tensors, file)


# -- checkpoints --------------------------------------------------------------------------


def save_checkpoint(
    directory: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng_state: dict[str, Any],
    position: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep``.

    If the write fails (a full disk), nothing of it is left and the previous checkpoint
    stays the latest; the error says so.
    """
    target = directory / f"{PREFIX}{step:08d}"
    try:
        with atomic_directory(target) as tmp:
            save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
            _write_state(tmp, "optimizer", optimizer.state_dict())
            _write_state(tmp, "scheduler", scheduler.state_dict())
            _write_state(tmp, "rng", rng_state)
            (tmp / "state.json").write_text(json.dumps({"step": step, **position}, indent=2), encoding="utf-8")
    except OSError as exc:
        earlier = list_checkpoints(directory)
        kept = f"{earlier[-1]} is still the latest checkpoint" if earlier else "no earlier checkpoint exists"
        why = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise PolyadaptError(
            f"could not write checkpoint {target}: {why}. Nothing of it was kept; {kept}. "
            "Free space on that disk (or fix the folder), then continue with --resume"
        ) from exc
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def _refuse_legacy(path: Path) -> None:
    """Stop at a polyadapt 0.1 checkpoint, whose states are pickles, before reading anything."""
    if (path / "optimizer.json").exists():
        return
    pickles = [name for name in LEGACY_PICKLES if (path / name).exists()]
    if pickles:
        raise PolyadaptError(
            f"checkpoint {path} was written by polyadapt 0.1: its {', '.join(pickles)} are pickles, "
            f"which polyadapt no longer loads because loading a pickle can run any code. Either {_RESTART}, "
            "or resume from a checkpoint written by this version"
        )


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Load checkpoint ``path`` into the model, optimizer and scheduler; return its state.

    Every file is read and checked before anything is changed; no file is unpickled.
    """
    path = Path(path)
    _refuse_legacy(path)
    weights = _read_tensors(path / "trainable.safetensors")
    optimizer_state = _read_state(path, "optimizer")
    scheduler_state = _read_state(path, "scheduler")
    rng_state = _read_state(path, "rng")
    state = _read_json(path / "state.json")
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) for k in ("step", "epoch", "batch")):
        raise _damaged(path / "state.json", "it lacks the step, epoch or batch number")

    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise PolyadaptError(
            f"checkpoint {path} does not match the model: {len(missing)} parameters such as "
            f"{missing[0]!r} are unknown; was the config (model or LoRA settings) changed?"
        )
    try:
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))
        optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(scheduler_state)
        restore_rng_state(rng_state)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise PolyadaptError(
            f"checkpoint {path} does not fit this run ({type(exc).__name__}: {exc}); was the config "
            f"(model, LoRA or training settings) changed? If so, {_RESTART}"
        ) from exc
    return state
