"""Shared pieces of the image plugin's tests: one torch thread, and run configs for the
tiny pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions are slower on two contended threads than on one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_image_config(
    root: Path,
    model: Path,
    train: Path,
    *,
    name: str,
    task_options: dict[str, Any],
    eval_data: Path | None = None,
    num_samples: int = 2,
    **training: Any,
) -> Path:
    """A text-to-image run config for ``model`` on the images in ``train``, written to
    ``root/<name>.yaml``; ``training`` overrides the tiny-run training settings."""
    settings = {
        "max_steps": 30,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "precision": "fp32",
        "warmup_ratio": 0.0,
        "seed": 3,
        **training,
    }
    data = {"train": str(train), "licence": "CC0-1.0", "eval_fraction": 0.25}
    if eval_data is not None:
        data["eval"] = str(eval_data)
    config = {
        "task": "text-to-image",
        "base_model": {"id": str(model), "dtype": "float32"},
        "data": data,
        "lora": {"r": 8, "alpha": 8},
        "training": settings,
        "evaluation": {"num_samples": num_samples},
        "task_options": task_options,
        "output": {"dir": str(root / "runs"), "name": name, "adapter_name": name},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def adapt_keeping_model(pm: Any, config_path: Path, state: Path) -> dict[str, Any]:
    """``runner.adapt`` of the config at ``config_path`` with its own state folder; returns
    run, adapter, report and the trained model the trainer returned."""
    import polyadapt.training
    from polyadapt import runner
    from polyadapt.config import load_config

    trained = []
    real_train = polyadapt.training.train

    def spy(job, *args, **kwargs):
        result = real_train(job, *args, **kwargs)
        trained.append(job.model)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYADAPT_HOME", str(state))
        mp.setattr(polyadapt.training, "train", spy)
        run, adapter, report = runner.adapt(pm, load_config(config_path))
    return {"run": run, "adapter": adapter, "report": report, "model": trained[0]}
