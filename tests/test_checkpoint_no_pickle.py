"""No command runs code hidden in a file it reads.

Checkpoints hold no pickle at all (safetensors plus JSON) and resume exactly; a polyadapt 0.1
checkpoint (pickled ``.pt`` states) is refused, never loaded. Base models and adapters that
come as pickles (``pytorch_model.bin``, ``adapter_model.bin``, a whisper ``.pt``) are read by
the libraries with ``torch.load(weights_only=True)``; one that would call code is refused
with a clear error naming the file. Each test plants a pickle whose unpickling creates a
marker file and asserts the marker never appears.
"""

from __future__ import annotations

import copy
import errno
import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_config
from typer.testing import CliRunner

from polyadapt.config import BaseModelConfig, TrainingConfig
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.training import TrainingJob, train
from polyadapt.training import checkpoint as ckpt
from polyadapt.training.schedule import make_scheduler

STATE_FILES = {
    "trainable.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "scheduler.json",
    "rng.safetensors",
    "rng.json",
    "state.json",
}


class Evil:
    """Unpickling this creates ``marker``: proof that a load ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path, kind: str = "torch") -> Path:
    """Write a hostile pickle at ``path``: as ``torch.save`` writes it (zip) or a bare pickle."""
    if kind == "torch":
        torch.save({"state": Evil(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"state": Evil(marker)}))
    return path


def test_the_planted_pickle_runs_code_when_unpickled(tmp_path):
    """The payload is live: the tests below would see the marker if anything unpickled it."""
    marker = tmp_path / "MARKER"
    handle = pickle.loads(plant(tmp_path / "x.pkl", marker, "raw").read_bytes())["state"]
    handle.close()
    assert marker.exists()
    marker.unlink()
    torch.load(plant(tmp_path / "x.pt", marker), weights_only=False)["state"].close()
    assert marker.exists()


# -- checkpoints ------------------------------------------------------------------------


def tiny_training(seed: int):
    """A model with dropout (draws from torch's RNG), AdamW and the trainer's scheduler."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.01)
    scheduler = make_scheduler(optimizer, "cosine", 2, 10)
    return model, optimizer, scheduler


def one_step(model, optimizer, scheduler) -> None:
    model(torch.randn(5, 4)).pow(2).sum().backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def draws():
    """The next values of every RNG stream, including the cached Gaussians."""
    return (
        random.random(),
        random.gauss(0, 1),
        np.random.random(3).tolist(),
        np.random.standard_normal(),
        torch.rand(3).tolist(),
    )


def trained_checkpoint(directory: Path, steps: int = 3, keep: int = 2):
    """Train ``steps`` steps, save checkpoint ``steps``; return the objects and the checkpoint."""
    model, optimizer, scheduler = tiny_training(0)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    for _ in range(steps):
        one_step(model, optimizer, scheduler)
    random.gauss(0, 1)  # leaves a cached Gaussian in python's state...
    np.random.standard_normal()  # ...and in numpy's (has_gauss, cached_gaussian)
    path = ckpt.save_checkpoint(
        directory,
        steps,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        rng_state=ckpt.capture_rng_state(),
        position={"epoch": 0, "batch": steps},
        keep=keep,
    )
    return model, optimizer, scheduler, path


def forbid_unpickling(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load unpickled something")

    for owner, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(owner, name, refuse)


def test_checkpoint_round_trip_is_exact_and_holds_no_pickle(tmp_path, monkeypatch):
    model, optimizer, scheduler, path = trained_checkpoint(tmp_path / "checkpoints")
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_scheduler = copy.deepcopy(scheduler.state_dict())
    expected_draws = draws()
    one_step(model, optimizer, scheduler)
    expected_weights = {k: v.clone() for k, v in model.state_dict().items()}

    assert {p.name for p in path.iterdir()} == STATE_FILES
    for name in ("optimizer.json", "scheduler.json", "rng.json"):
        assert json.loads((path / name).read_text())["format"] == ckpt.FORMAT

    fresh_model, fresh_optimizer, fresh_scheduler = tiny_training(99)
    random.seed(42)
    np.random.seed(42)
    torch.manual_seed(42)
    with monkeypatch.context() as patch:
        forbid_unpickling(patch)
        state = ckpt.load_checkpoint(path, model=fresh_model, optimizer=fresh_optimizer, scheduler=fresh_scheduler)
    assert state == {"step": 3, "epoch": 0, "batch": 3}

    restored = fresh_optimizer.state_dict()
    assert restored["param_groups"] == saved_optimizer["param_groups"]  # betas still a tuple
    assert restored["state"].keys() == saved_optimizer["state"].keys()
    for index, entry in saved_optimizer["state"].items():
        assert entry.keys() == restored["state"][index].keys()
        for key, value in entry.items():
            got = restored["state"][index][key]
            assert got.dtype == value.dtype and torch.equal(got, value), (index, key)
    assert fresh_scheduler.state_dict() == saved_scheduler
    assert draws() == expected_draws
    one_step(fresh_model, fresh_optimizer, fresh_scheduler)
    for name, value in fresh_model.state_dict().items():
        assert torch.equal(value, expected_weights[name]), name


def test_every_rng_stream_round_trips_including_cuda_states(tmp_path, monkeypatch):
    """The CUDA states (a list of uint8 tensors) are stored too; checked here without a GPU."""
    model, optimizer, scheduler = tiny_training(0)
    rng_state = ckpt.capture_rng_state()
    rng_state["cuda"] = [torch.randint(0, 255, (16,), dtype=torch.uint8) for _ in range(2)]
    ckpt.save_checkpoint(
        tmp_path,
        1,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        rng_state=rng_state,
        position={"epoch": 0, "batch": 1},
        keep=1,
    )
    restored = []
    monkeypatch.setattr(ckpt, "restore_rng_state", restored.append)
    ckpt.load_checkpoint(tmp_path / "step-00000001", model=model, optimizer=optimizer, scheduler=scheduler)
    (state,) = restored
    assert state["python"] == rng_state["python"]
    version, mt, pos, has_gauss, cached = state["numpy"]
    assert (version, pos, has_gauss, cached) == tuple(rng_state["numpy"][i] for i in (0, 2, 3, 4))
    assert mt.dtype == np.uint32 and np.array_equal(mt, rng_state["numpy"][1])
    assert torch.equal(state["torch"], rng_state["torch"])
    assert len(state["cuda"]) == 2 and all(torch.equal(a, b) for a, b in zip(state["cuda"], rng_state["cuda"]))


def test_a_scheduler_state_that_needs_pickle_is_refused_at_save_time(tmp_path):
    class Factor:  # a callable object: LambdaLR saves its __dict__
        def __init__(self):
            self.shape = np.cos

        def __call__(self, step):
            return 1.0

    model, optimizer, _ = tiny_training(0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, Factor())
    with pytest.raises(PolyadaptError, match=r"scheduler state.*'lr_lambdas\.0\.shape' holds a ufunc"):
        ckpt.save_checkpoint(
            tmp_path,
            1,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            rng_state=ckpt.capture_rng_state(),
            position={"epoch": 0, "batch": 1},
            keep=1,
        )
    assert list(tmp_path.iterdir()) == [], "a refused checkpoint left files behind"


def fresh_targets():
    model, optimizer, scheduler = tiny_training(99)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    return dict(model=model, optimizer=optimizer, scheduler=scheduler), before


def unchanged(model, before) -> bool:
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_polyadapt_01_checkpoint_is_refused_and_never_unpickled(tmp_path):
    *_, path = trained_checkpoint(tmp_path / "checkpoints")
    for name in STATE_FILES - {"trainable.safetensors", "state.json"}:
        (path / name).unlink()
    marker = tmp_path / "MARKER"
    plant(path / "optimizer.pt", marker)
    plant(path / "scheduler.pt", marker, "raw")
    plant(path / "rng.pt", marker)
    assert ckpt.list_checkpoints(tmp_path / "checkpoints") == [path]  # still found as the latest

    targets, before = fresh_targets()
    with pytest.raises(PolyadaptError) as refused:
        ckpt.load_checkpoint(path, **targets)
    message = str(refused.value)
    assert str(path) in message
    assert "optimizer.pt, scheduler.pt, rng.pt are pickles" in message
    assert "loading a pickle can run any code" in message
    assert "without --resume" in message and "checkpoint written by this version" in message
    assert not marker.exists()
    assert unchanged(targets["model"], before)


@pytest.mark.parametrize("kind", ["torch", "raw"])
@pytest.mark.parametrize("name", sorted(STATE_FILES))
def test_a_pickle_under_a_new_file_name_is_refused(tmp_path, name, kind):
    *_, path = trained_checkpoint(tmp_path / "checkpoints")
    marker = tmp_path / "MARKER"
    plant(path / name, marker, kind)
    targets, before = fresh_targets()
    with pytest.raises(PolyadaptError, match="is damaged") as refused:
        ckpt.load_checkpoint(path, **targets)
    assert str(path / name) in str(refused.value) and "without --resume" in str(refused.value)
    assert not marker.exists()
    assert unchanged(targets["model"], before), "a refused checkpoint changed the model"


@pytest.mark.parametrize(
    ("missing", "error"),
    [
        ("rng.json", r"step-00000003 is incomplete: rng\.json is missing"),
        ("optimizer.safetensors", r"optimizer\.json is damaged: it names a tensor 'state\.0\.\w+' that optimizer\."),
    ],
)
def test_a_missing_state_file_is_named(tmp_path, missing, error):
    *_, path = trained_checkpoint(tmp_path / "checkpoints")
    (path / missing).unlink()
    targets, _ = fresh_targets()
    with pytest.raises(PolyadaptError, match=error):
        ckpt.load_checkpoint(path, **targets)


def full_disk_at(monkeypatch, failing: str) -> None:
    """Make the write of the checkpoint file ``failing`` write half, then hit a full disk."""

    def no_space(path: Path) -> None:
        path.write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    real_save, real_write_text = ckpt.save_file, Path.write_text

    def save_file(tensors, filename, *args, **kwargs):
        if Path(filename).name == failing:
            no_space(Path(filename))
        return real_save(tensors, filename, *args, **kwargs)

    def write_text(self, *args, **kwargs):
        if self.name == failing:
            no_space(self)
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", save_file)
    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("failing", ["trainable.safetensors", "optimizer.safetensors", "rng.json", "state.json"])
def test_a_full_disk_keeps_the_previous_checkpoint_the_latest(tmp_path, monkeypatch, failing):
    directory = tmp_path / "checkpoints"
    model, optimizer, scheduler, first = trained_checkpoint(directory)
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    one_step(model, optimizer, scheduler)
    with monkeypatch.context() as patch:
        full_disk_at(patch, failing)
        with pytest.raises(PolyadaptError) as failed:
            ckpt.save_checkpoint(
                directory,
                4,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                rng_state=ckpt.capture_rng_state(),
                position={"epoch": 0, "batch": 4},
                keep=1,  # the write must fail before pruning removes the previous one
            )
    message = str(failed.value)
    assert str(directory / "step-00000004") in message and "no space left on device" in message
    assert f"{first} is still the latest checkpoint" in message
    assert [p.name for p in directory.iterdir()] == [first.name], "a temporary folder was left behind"
    targets, _ = fresh_targets()
    assert ckpt.load_checkpoint(first, **targets)["step"] == 3
    assert targets["optimizer"].state_dict()["param_groups"] == saved_optimizer["param_groups"]


class Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(8, 1)
        self.dropout = torch.nn.Dropout(0.2)

    def forward(self, batch):
        return ((self.head(self.dropout(batch["x"])).squeeze(-1) - batch["y"]) ** 2).sum()


def regression_job(model: Regressor) -> TrainingJob:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(24, 8, generator=generator)
    data = [{"x": x[i], "y": x[i, 0] - x[i, 1]} for i in range(24)]
    return TrainingJob(
        model=model,
        train_data=data,
        collate=lambda items: {
            "x": torch.stack([i["x"] for i in items]),
            "y": torch.stack([i["y"] for i in items]),
            "num_items": len(items),
        },
        loss=lambda m, b: m(b),
    )


def test_a_run_stopped_by_a_full_disk_resumes_from_the_checkpoint_before(tmp_path, monkeypatch):
    config = TrainingConfig(
        max_steps=9, batch_size=4, learning_rate=0.05, precision="fp32", warmup_ratio=0.0, seed=3, checkpoint_every=3
    )
    reference = Regressor()
    train(regression_job(reference), config, tmp_path / "ref", progress=False)

    real_save, saves = ckpt.save_checkpoint, {"n": 0}

    def second_save_hits_a_full_disk(directory, step, **kwargs):
        saves["n"] += 1
        if saves["n"] == 2:
            full_disk_at(monkeypatch, "optimizer.json")
        return real_save(directory, step, **kwargs)

    monkeypatch.setattr(ckpt, "save_checkpoint", second_save_hits_a_full_disk)
    with pytest.raises(PolyadaptError, match="step-00000006: no space left on device"):
        train(regression_job(Regressor()), config, tmp_path / "run", progress=False)
    monkeypatch.undo()
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step-00000003"]

    resumed = Regressor()
    result = train(regression_job(resumed), config, tmp_path / "run", resume=True, progress=False)
    assert result.resumed_from == 3
    assert torch.equal(resumed.head.weight, reference.head.weight)


def test_adapt_resume_refuses_planted_pickles_and_runs_nothing(tiny_llama, text_data, tmp_path, monkeypatch):
    import polyadapt_text
    import polyadapt_text.loss as text_loss

    from polyadapt import runner
    from polyadapt.cli import app
    from polyadapt.config import load_config
    from polyadapt.plugins import PluginManager

    config_path = make_config(tmp_path, tiny_llama, text_data, max_steps=4, checkpoint_every=2)
    config = load_config(config_path)
    real_loss, calls = text_loss.summed_loss, {"n": 0}

    def interrupting_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(text_loss, "summed_loss", interrupting_loss)
    pm = PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})
    with pytest.raises(KeyboardInterrupt):
        runner.adapt(pm, config)
    monkeypatch.setattr(text_loss, "summed_loss", real_loss)

    run_dir = tmp_path / "runs" / "test-run"
    (latest,) = ckpt.list_checkpoints(run_dir / "checkpoints")
    marker = tmp_path / "MARKER"
    for part in ("optimizer", "scheduler", "rng"):
        for leftover in latest.glob(f"{part}.*"):
            leftover.unlink()
        plant(latest / f"{part}.pt", marker)
    planted = sorted(p.name for p in latest.iterdir())

    result = CliRunner().invoke(app, ["adapt", str(config_path), "--resume"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"error: checkpoint {latest} was written by polyadapt 0.1" in output
    assert "are pickles" in output and "without --resume" in output and "Traceback" not in output
    assert not marker.exists()
    assert not (run_dir / "adapter").exists()
    assert sorted(p.name for p in latest.iterdir()) == planted
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [latest.name], "it trained on"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


# -- bases and adapters ------------------------------------------------------------------


def refused_clearly(message: str, file: Path) -> None:
    assert str(file) in message
    assert "pickle that holds more than tensors (it calls io.open)" in message
    assert "could run code" in message and ".safetensors" in message
    assert "weights_only" not in message  # torch's advice to turn the protection off


def test_a_pickled_text_base_that_would_run_code_is_refused(tiny_llama, tmp_path):
    from polyadapt_text.model import load_base

    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    for weights in base.glob("*.safetensors*"):
        weights.unlink()
    marker = tmp_path / "MARKER"
    bad = plant(base / "pytorch_model.bin", marker)
    with pytest.raises(ConfigError) as refused:
        load_base(BaseModelConfig(id=str(base), dtype="float32"))
    assert str(refused.value).startswith("base_model.id:")
    refused_clearly(str(refused.value), bad)
    assert not marker.exists()


def test_a_pickled_adapter_that_would_run_code_is_refused(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model
    from polyadapt_text import TASK
    from polyadapt_text.serve import TextServable
    from transformers import AutoModelForCausalLM

    from polyadapt.types import ServeSpec

    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), lora).save_pretrained(adapter)
    (adapter / "adapter_model.safetensors").unlink()
    marker = tmp_path / "MARKER"
    bad = plant(adapter / "adapter_model.bin", marker)

    servable = TextServable(ServeSpec(task=TASK, base_model=str(tiny_llama), base_name="tiny"))
    with pytest.raises(PolyadaptError) as refused:
        servable.load_adapter("evil", adapter)
    assert str(refused.value).startswith("adapter 'evil':")
    refused_clearly(str(refused.value), bad)
    assert not marker.exists()
    assert servable.adapter_names() == []


def test_a_pickled_whisper_base_that_would_run_code_is_refused(tmp_path):
    from polyadapt_speech.model import load_whisper

    marker = tmp_path / "MARKER"
    bad = tmp_path / "whisper.pt"
    torch.save({"dims": Evil(marker), "model_state_dict": {}}, bad)
    with pytest.raises(ConfigError) as refused:
        load_whisper(BaseModelConfig(id=str(bad), dtype="float32"))
    assert str(refused.value).startswith("base_model.id:")
    refused_clearly(str(refused.value), bad)
    assert not marker.exists()


def test_a_pickled_diffusers_base_that_would_run_code_is_refused(tiny_base_model, tmp_path):
    from polyadapt_image.model import load_pipeline

    pipeline = tmp_path / "pipeline"
    shutil.copytree(tiny_base_model("image"), pipeline)
    for weights in (pipeline / "unet").glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "MARKER"
    bad = plant(pipeline / "unet" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(ConfigError) as refused:
        load_pipeline(BaseModelConfig(id=str(pipeline), dtype="float32"))
    refused_clearly(str(refused.value), bad)
    assert not marker.exists()
