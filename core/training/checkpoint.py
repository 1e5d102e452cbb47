"""Checkpoints that make ``--resume`` continue exactly where a run stopped.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` holding the trainable parameters
(safetensors), the optimizer and scheduler states, every RNG state and the data position.
It is written to a temporary folder and renamed, so a crash mid-write leaves the previous
checkpoint as the latest.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from polyadapt.fileio import atomic_directory

PREFIX = "step-"


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
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep``."""
    target = directory / f"{PREFIX}{step:08d}"
    with atomic_directory(target) as tmp:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **position}, indent=2))
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


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Load checkpoint ``path`` into the model, optimizer and scheduler; return its state."""
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise RuntimeError(
            f"checkpoint {path} does not match the model: {len(missing)} parameters such as "
            f"{missing[0]!r} are unknown; was the config (model or LoRA settings) changed?"
        )
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    restore_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
