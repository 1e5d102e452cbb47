"""The training progress bar (rich), a no-op when disabled or on non-main processes."""

from __future__ import annotations

from typing import Any


class _NoBar:
    def update(self, step: int, record: dict[str, Any]) -> None:
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

    def update(self, step: int, record: dict[str, Any]) -> None:
        parts = [f"loss {record['train_loss']:.4f}"]
        if record.get("eval_loss") is not None:
            parts.append(f"eval {record['eval_loss']:.4f}")
        if record.get("tokens_per_s"):
            parts.append(f"{record['tokens_per_s']:.0f} tok/s")
        self.progress.update(self.task, completed=step, status="  ".join(parts))

    def close(self) -> None:
        self.progress.stop()


def progress_bar(enabled: bool, total: int, completed: int):
    """A bar over ``total`` optimizer steps starting at ``completed``."""
    return _RichBar(total, completed) if enabled else _NoBar()
