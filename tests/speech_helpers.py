"""Audio folders and run configs for the speech tests (tones and noise made here, no speech)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from polyadapt_speech.testing import tone

SPEECH_TERMS = ["Solvanta rider", "Marlowe deductible", "Quintrel premium"]


def sentences(n: int, seed: int) -> list[str]:
    """Insurance sentences built from a few frames and the glossary terms."""
    import random

    rng = random.Random(seed)
    frames = ["The {a} covers the {b}.", "Ask about the {a} and the {b}.", "Every {a} has a {b}."]
    out = []
    for _ in range(n):
        a, b = rng.sample(SPEECH_TERMS, 2)
        out.append(rng.choice(frames).format(a=a, b=b))
    return out


def write_clip(path: Path, samples: np.ndarray, rate: int = 16_000, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate, **options)
    return path


def audio_folder(
    root: Path, texts: list[str], *, consent: Any = "yes", fmt: str = "jsonl", seed: int = 0, seconds: float = 1.0
) -> Path:
    """A folder of 16 kHz WAV tones with metadata.<fmt>; returns the folder."""
    rows = []
    for i, text in enumerate(texts):
        name = f"clip{i:03d}.wav"
        write_clip(root / name, tone(seconds, 200 + 37 * i, seed=seed + i))
        row = {"file_name": name, "transcription": text, "speaker_id": f"spk{i % 3}"}
        if consent is not None:
            row["consent"] = consent
        rows.append(row)
    write_metadata(root, rows, fmt)
    return root


def write_metadata(root: Path, rows: list[dict[str, Any]], fmt: str = "jsonl") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        path = root / "metadata.csv"
        fields = sorted({k for row in rows for k in row})
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path = root / "metadata.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def speech_config(
    tmp_path: Path,
    model: Path,
    data: dict[str, Path],
    *,
    task_options: dict | None = None,
    policy: Path | None = None,
    **training: Any,
) -> dict[str, Any]:
    """A speech-recognition run config (a dict) for the tiny whisper."""
    settings = {
        "max_steps": 10,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "precision": "fp32",
        "warmup_ratio": 0.0,
        "seed": 3,
    }
    settings.update(training)
    config: dict[str, Any] = {
        "task": "speech-recognition",
        "base_model": {"id": str(model), "dtype": "float32"},
        "data": {
            "train": str(data["train"]),
            "eval": str(data["eval"]),
            "licence": "CC0-1.0",
            "general_eval": str(data["general"]) if "general" in data else "none",
        },
        "lora": {"r": 8, "alpha": 16},
        "training": settings,
        "evaluation": {"num_samples": 2},
        "task_options": {"glossary": SPEECH_TERMS, "max_decode_tokens": 12, **(task_options or {})},
        "output": {"dir": str(tmp_path / "runs"), "name": "speech-run"},
    }
    if policy is not None:
        config["governance"] = {"policy": str(policy)}
    return config
