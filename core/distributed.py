"""What the runner needs to agree on across processes under ``accelerate launch``.

With one process (the usual case) these are trivial and import nothing. With several
(``WORLD_SIZE`` > 1), the main process decides (the run folder, for instance) and the
others receive its decision, so every process writes into the same run.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """How many processes take part in this run (``WORLD_SIZE``, set by the launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def on_cpu_only() -> bool:
    """True when several processes must train on the CPU (gloo): no CUDA GPU, or the launcher
    said so (``accelerate launch --cpu`` sets ``ACCELERATE_USE_CPU``).

    accelerate picks its CPU backend only when told: processes started by torchrun or by
    ``accelerate launch``'s torch launcher on a machine without GPUs would otherwise each
    train alone, as separate one-process runs.
    """
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    if world_size() == 1:
        return False
    import torch

    return not torch.cuda.is_available()


def _state():
    from accelerate import PartialState

    return PartialState(cpu=on_cpu_only())


def is_main_process() -> bool:
    """True on the process that writes run records and evaluates."""
    return world_size() == 1 or _state().is_main_process


def broadcast_from_main(value: T) -> T:
    """The main process's ``value``, on every process."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    _state()  # makes sure the process group exists
    box: list[Any] = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def wait_for_everyone() -> None:
    """Block until every process reaches this point."""
    if world_size() > 1:
        _state().wait_for_everyone()
