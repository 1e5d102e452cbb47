"""Training progress: a rich bar on a terminal, one line per logged step when the output is
a file or pipe (a bar there shows nothing until the end), nothing when disabled or on
non-main processes."""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO


def _status(record: dict[str, Any]) -> str:
    parts = [f"loss {record['train_loss']:.4f}"]
    if record.get("eval_loss") is not None:
        parts.append(f"eval {record['eval_loss']:.4f}")
    if record.get("tokens_per_s"):
        parts.append(f"{record['tokens_per_s']:.0f} tok/s")
    return "  ".join(parts)


class ProgressBar(Protocol):
    """What :func:`progress_bar` returns: told of every step, closed at the end."""

    def update(self, step: int, record: dict[str, Any], *, logged: bool = False) -> None: ...

    def close(self) -> None: ...


class _NoBar:
    def update(self, step: int, record: dict[str, Any], *, logged: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, completed: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            transient=False,
        )
        self.task = self.progress.add_task("train", total=total, completed=completed, status="")
        self.progress.start()

    def update(self, step: int, record: dict[str, Any], *, logged: bool = False) -> None:
        self.progress.update(self.task, completed=step, status=_status(record))

    def close(self) -> None:
        self.progress.stop()


class _Lines:
    def __init__(self, total: int, stream: TextIO):
        self.total, self.stream = total, stream

    def update(self, step: int, record: dict[str, Any], *, logged: bool = False) -> None:
        if logged:
            print(f"training step {step}/{self.total}  {_status(record)}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, completed: int, stream: TextIO | None = None) -> ProgressBar:
    """Progress over ``total`` optimizer steps starting at ``completed``: a bar on a
    terminal, else a line per logged step on ``stream`` (default stdout)."""
    if not enabled:
        return _NoBar()
    stream = stream or sys.stdout
    return _RichBar(total, completed) if stream.isatty() else _Lines(total, stream)
