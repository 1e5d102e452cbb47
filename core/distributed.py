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


def _state():
    from accelerate import PartialState

    return PartialState()


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
