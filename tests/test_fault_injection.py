"""kill -9 at each phase of a real `polyadapt adapt` process, then `--resume`: the adapter is
bit-identical to an uninterrupted run's, the run and the lineage store say "completed" once,
and nothing half-written is left behind.

Each interrupted run is a child process that wraps one function of the run (reading the
data, a training step, writing a checkpoint, saving the adapter, evaluating, recording the
lineage) so that the process SIGKILLs itself at that exact point: no handler, no cleanup,
as when the machine's OOM killer or a pre-empted node ends it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from conftest import make_config

pytestmark = pytest.mark.slow

#: Run in the child: ``KILLER phase config`` wraps the phase's function, then runs the CLI.
KILLER = r"""
import importlib, os, signal, sys

phase, config = sys.argv[1], sys.argv[2]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(module, owner, attr, nth, when):
    target = importlib.import_module(module)
    holder = getattr(target, owner) if owner else target
    original = getattr(holder, attr)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth and when == "before":
            die()
        result = original(*args, **kwargs)
        if calls["n"] == nth and when == "after":
            die()
        return result

    setattr(holder, attr, wrapper)


PHASES = {
    "reading data": ("polyadapt.rundata", None, "write_data_files", 1, "before"),
    "training step": ("polyadapt_text.loss", None, "summed_loss", 7, "before"),
    "checkpoint write": ("polyadapt.training.checkpoint", None, "_write_state", 5, "before"),
    "after a checkpoint": ("polyadapt.training.checkpoint", None, "save_checkpoint", 2, "after"),
    "adapter save": ("polyadapt_text.task", "TextGenerationTask", "save_adapter", 1, "after"),
    "evaluation": ("polyadapt_text.evaluate", None, "evaluate", 1, "before"),
    "lineage record": ("polyadapt.lineage.store", "LineageStore", "finish_run", 1, "before"),
    "after the lineage record": ("polyadapt.lineage.store", "LineageStore", "finish_run", 1, "after"),
}
wrap(*PHASES[phase])
from polyadapt.cli import main

sys.argv = ["polyadapt", "adapt", config]
main()
"""

PHASES = [
    "reading data",
    "training step",
    "checkpoint write",
    "after a checkpoint",
    "adapter save",
    "evaluation",
    "lineage record",
    "after the lineage record",
]
SETTINGS = {"max_steps": 12, "checkpoint_every": 4}


def _config(root: Path, model: Path, data: dict[str, Path], name: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = make_config(root, model, data, **SETTINGS)
    config = yaml.safe_load(path.read_text())
    config["output"] = {"dir": str(root / "runs"), "name": name}
    config["evaluation"] = {"num_samples": 0}
    path.write_text(yaml.safe_dump(config))
    return path


def _polyadapt(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POLYADAPT_HOME=str(state), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-m", "polyadapt.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def _killed(phase: str, config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POLYADAPT_HOME=str(state), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-c", KILLER, phase, str(config)], env=env, capture_output=True, text=True, timeout=600
    )


def _adapter(run_dir: Path) -> dict:
    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def reference(tiny_llama, tmp_path_factory):
    """The adapter of an uninterrupted run of the same config."""
    from conftest import domain_text, write_jsonl

    root = tmp_path_factory.mktemp("reference")
    data = {
        "train": write_jsonl(root / "train.jsonl", [{"text": t} for t in domain_text(40, seed=1)]),
        "eval": write_jsonl(root / "eval.jsonl", [{"text": t} for t in domain_text(8, seed=2)]),
        "general": write_jsonl(root / "general.jsonl", [{"text": "The weather is mild today."}] * 4),
    }
    config = _config(root / "work", tiny_llama, data, "run")
    done = _polyadapt("adapt", str(config), state=root / "state")
    assert done.returncode == 0, done.stderr[-3000:]
    return data, _adapter(root / "work" / "runs" / "run")


@pytest.mark.parametrize("phase", PHASES)
def test_kill_9_then_resume_gives_the_same_adapter(phase, reference, tiny_llama, tmp_path):
    data, expected = reference
    config = _config(tmp_path / "work", tiny_llama, data, "run")
    state = tmp_path / "state"
    run_dir = tmp_path / "work" / "runs" / "run"

    killed = _killed(phase, config, state)
    assert killed.returncode == -9, f"the run was not killed at {phase!r}: {killed.stderr[-2000:]}"

    resumed = _polyadapt("adapt", str(config), "--resume", state=state)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr

    got = _adapter(run_dir)
    assert got.keys() == expected.keys()
    assert all(got[name].equal(expected[name]) for name in expected), f"adapter differs after a kill at {phase!r}"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    leftovers = [p.name for folder in (run_dir, run_dir / "checkpoints") for p in folder.glob(".*.tmp")]
    assert not leftovers, leftovers

    with sqlite3.connect(state / "lineage.db") as db:
        runs = db.execute("SELECT run_id, status FROM runs").fetchall()
        adapters = db.execute("SELECT count(*) FROM adapters").fetchone()[0]
    assert runs == [("run", "completed")]
    assert adapters == 1
