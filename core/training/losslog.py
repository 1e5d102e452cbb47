"""The loss log: every logged step as CSV and JSON, and a PNG loss curve."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from polyadapt.fileio import atomic_write_bytes, atomic_write_text

FIELDS = ["step", "epoch", "train_loss", "eval_loss", "learning_rate", "tokens_per_s", "elapsed_s"]


def write_loss_log(logs_dir: Path, records: list[dict[str, Any]], *, plot: bool = True) -> None:
    """Write ``loss.csv``, ``loss.json`` and (with ``plot``) ``loss.png`` into ``logs_dir``."""
    atomic_write_text(logs_dir / "loss.json", json.dumps(records, indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(logs_dir / "loss.csv", buffer.getvalue())
    if plot and records:
        atomic_write_bytes(logs_dir / "loss.png", _plot(records))


def _plot(records: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
