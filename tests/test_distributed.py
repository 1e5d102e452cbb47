"""Multi-process training through ``accelerate launch``: 2 CPU processes over gloo train the
same adapter as one process with the same global batch, and resume across processes
(``configs/accelerate/cpu-2proc.yaml``).

Equivalence: with ``training.batch_size: b`` on each of 2 processes, process r takes batches
r, r+2, r+4, ... of the epoch's permutation (``_Batches``), so optimizer step k sees the
examples ``order[2bk : 2bk + 2b]``: exactly what one process with ``batch_size: 2b`` sees.
The loss is normalised by the items of the whole step on every process, so the gradient
is the same mean; only the float summation order differs (fp32: close, not equal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_config
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
CPU_2PROC = ROOT / "configs" / "accelerate" / "cpu-2proc.yaml"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",  # two processes on a shared CPU: one thread each
        POLYADAPT_LOAD_PLUGINS=env.get("POLYADAPT_LOAD_PLUGINS", "text"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")]),
    )
    return env


def _adapt(config: Path, *, processes: int, resume: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    command = _launch(config, processes=processes, resume=resume)
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def _write_config(folder: Path, model: Path, data: dict[str, Path], name: str, **training) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = make_config(folder, model, data, **training)
    config = yaml.safe_load(path.read_text())
    config["output"]["name"] = name
    config["lora"]["dropout"] = 0.0
    config["evaluation"]["enabled"] = False
    path.write_text(yaml.safe_dump(config))
    return path


def _run_folder(config: Path) -> Path:
    data = yaml.safe_load(config.read_text())
    return Path(data["output"]["dir"]) / data["output"]["name"]


def _adapter(run_dir: Path) -> dict:
    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def _losses(run_dir: Path) -> list[float]:
    return [r["train_loss"] for r in json.loads((run_dir / "logs" / "loss.json").read_text())]


def _assert_same_adapter(one: dict, two: dict) -> None:
    import torch

    assert one.keys() == two.keys() and one
    for name in one:
        assert torch.allclose(one[name], two[name], atol=2e-5, rtol=1e-4), (name, (one[name] - two[name]).abs().max())


def _launch(config: Path, *, processes: int, resume: bool = False) -> list[str]:
    command = [sys.executable, "-m", "polyadapt.cli", "adapt", str(config)] + (["--resume"] if resume else [])
    if processes == 1:
        return command
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CPU_2PROC),
        "--num_processes",
        str(processes),
        "--main_process_port",
        str(_free_port()),
        *command[1:],
    ]


def _kill_after_first_checkpoint(config: Path, timeout: float = 600) -> int:
    """Start the 2-process run and stop it (SIGTERM) once a complete checkpoint exists, before
    the run ends; return the newest checkpoint's step."""
    import signal
    import time

    from polyadapt.training.checkpoint import PREFIX, list_checkpoints

    checkpoints = _run_folder(config) / "checkpoints"
    process = subprocess.Popen(
        _launch(config, processes=2),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not list_checkpoints(checkpoints):
            if process.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint:\n{process.stderr.read()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint in time")
            time.sleep(0.01)
    finally:
        # SIGTERM to the launcher, as a scheduler preempting the job sends: torch's launcher
        # passes it on to the workers (each in its own session, out of reach of killpg)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        process.stderr.close()
    return int(list_checkpoints(checkpoints)[-1].name[len(PREFIX) :])


def test_two_processes_train_the_one_process_adapter_and_resume(tiny_llama, text_data, tmp_path):
    settings = dict(max_steps=40, checkpoint_every=4)
    single = _write_config(tmp_path / "single", tiny_llama, text_data, "single", batch_size=8, **settings)
    double = _write_config(tmp_path / "double", tiny_llama, text_data, "double", batch_size=4, **settings)
    _adapt(single, processes=1)
    _adapt(double, processes=2)
    single_dir, double_dir = _run_folder(single), _run_folder(double)

    record = json.loads((double_dir / "adapter.json").read_text())
    assert record["train_metrics"]["processes"] == 2 and record["train_metrics"]["steps"] == 40
    # every process's tokens are counted: the same tokens as the one process's
    single_record = json.loads((single_dir / "adapter.json").read_text())
    assert record["train_metrics"]["tokens"] == single_record["train_metrics"]["tokens"]
    assert json.loads((double_dir / "run.json").read_text())["status"] == "completed"
    # the logged loss is the step's mean over both processes' items
    assert _losses(double_dir) == pytest.approx(_losses(single_dir), rel=1e-4, abs=1e-5)
    _assert_same_adapter(_adapter(single_dir), _adapter(double_dir))

    # a 2-process run killed after a checkpoint resumes (2 processes again) to the same adapter
    resumed = _write_config(tmp_path / "resumed", tiny_llama, text_data, "resumed", batch_size=4, **settings)
    stopped_at = _kill_after_first_checkpoint(resumed)
    resumed_dir = _run_folder(resumed)
    assert not (resumed_dir / "adapter").exists()
    # stopped, not finished (SIGTERM reaches the loop as an interrupt: it saves a checkpoint first)
    assert json.loads((resumed_dir / "run.json").read_text())["status"] in ("running", "interrupted")
    _adapt(resumed, processes=2, resume=True)
    run = json.loads((resumed_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["resumed"] is True
    resumed_from = json.loads((resumed_dir / "adapter.json").read_text())["train_metrics"]["resumed_from"]
    assert resumed_from is not None and stopped_at <= resumed_from < 40
    assert _losses(resumed_dir) == pytest.approx(_losses(double_dir), rel=1e-4, abs=1e-5)
    _assert_same_adapter(_adapter(double_dir), _adapter(resumed_dir))
