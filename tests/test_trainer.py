"""The shared trainer: accumulation, schedules, checkpoints and exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from polyadapt.config import TrainingConfig
from polyadapt.errors import PolyadaptError
from polyadapt.training import TrainingJob, train
from polyadapt.training.checkpoint import list_checkpoints
from polyadapt.training.schedule import lr_lambda


class Regressor(torch.nn.Module):
    """A frozen random projection plus a trainable one, with dropout (uses the RNG)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.frozen = torch.nn.Linear(8, 8).requires_grad_(False)
        self.head = torch.nn.Linear(8, 1)
        self.dropout = torch.nn.Dropout(0.2)

    def forward(self, batch):
        prediction = self.head(self.dropout(torch.tanh(self.frozen(batch["x"])))).squeeze(-1)
        return ((prediction - batch["y"]) ** 2).sum()


def dataset(n=40):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=generator)
    y = x[:, 0] * 2 - x[:, 1]
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def collate(items):
    return {
        "x": torch.stack([i["x"] for i in items]),
        "y": torch.stack([i["y"] for i in items]),
        "num_items": len(items),
    }


def job(model=None, **kwargs):
    return TrainingJob(
        model=model or Regressor(),
        train_data=dataset(),
        collate=collate,
        loss=lambda m, b: m(b),
        eval_data=dataset(12),
        **kwargs,
    )


def config(**overrides):
    base = dict(max_steps=12, batch_size=4, learning_rate=0.05, precision="fp32", warmup_ratio=0.0, seed=3)
    return TrainingConfig(**(base | overrides))


def test_training_lowers_eval_loss_and_writes_logs(tmp_path):
    result = train(job(), config(eval_every=4), tmp_path, progress=False)
    assert result.steps == 12
    # 12 steps of 4 examples: the examples/s figure counts exactly those
    assert result.examples_per_s == pytest.approx(48 / result.wall_s, rel=0.01)
    first_eval = json.loads((tmp_path / "logs" / "loss.json").read_text())[3]["eval_loss"]
    assert result.eval_loss < first_eval
    assert (tmp_path / "logs" / "loss.csv").read_text().startswith("step,epoch,train_loss,eval_loss")
    assert (tmp_path / "logs" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    big = Regressor()
    big.dropout.p = 0.0
    small = Regressor()
    small.dropout.p = 0.0
    train(job(big), config(batch_size=8, max_steps=5), tmp_path / "a", progress=False)
    train(job(small), config(batch_size=4, grad_accumulation=2, max_steps=5), tmp_path / "b", progress=False)
    # same data order (batches of 4 pairs of the permutation) and token-normalised loss
    assert torch.allclose(big.head.weight, small.head.weight, atol=1e-5)


class Crash(Exception):
    pass


def crashing_loss(after_calls: int, exc=Crash):
    calls = {"n": 0}

    def loss(model, batch):
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise exc()
        return model(batch)

    return loss


def test_resume_after_crash_equals_uninterrupted_run(tmp_path):
    reference = Regressor()
    train(job(reference), config(checkpoint_every=4), tmp_path / "ref", progress=False)

    crashed = Regressor()
    crashing = job(crashed)
    crashing.loss = crashing_loss(after_calls=10)
    with pytest.raises(Crash):
        train(crashing, config(checkpoint_every=4), tmp_path / "run", progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-00000004", "step-00000008"]

    resumed = Regressor()  # a fresh process would rebuild the model from scratch
    result = train(job(resumed), config(checkpoint_every=4), tmp_path / "run", resume=True, progress=False)
    assert result.resumed_from == 8 and result.steps == 12
    assert torch.equal(resumed.head.weight, reference.head.weight)
    assert torch.equal(resumed.head.bias, reference.head.bias)
    log = json.loads((tmp_path / "run" / "logs" / "loss.json").read_text())
    assert [r["step"] for r in log] == list(range(1, 13))


def test_ctrl_c_checkpoints_the_last_completed_step(tmp_path):
    reference = Regressor()
    train(job(reference), config(), tmp_path / "ref", progress=False)
    interrupted = job(Regressor())
    interrupted.loss = crashing_loss(after_calls=7, exc=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, config(), tmp_path / "run", progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-00000007"]
    resumed = Regressor()
    train(job(resumed), config(), tmp_path / "run", resume=True, progress=False)
    assert torch.equal(resumed.head.weight, reference.head.weight)


def test_ctrl_c_in_the_final_evaluation_keeps_every_step(tmp_path):
    reference = Regressor()
    expected = train(job(reference), config(), tmp_path / "ref", progress=False)
    interrupted = job(Regressor())
    interrupted.loss = crashing_loss(after_calls=12, exc=KeyboardInterrupt)  # 12 steps, then the eval
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, config(), tmp_path / "run", progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-00000012"]
    resumed = Regressor()
    result = train(job(resumed), config(), tmp_path / "run", resume=True, progress=False)
    assert result.resumed_from == 12 and result.steps == 12  # no step trained twice
    assert torch.equal(resumed.head.weight, reference.head.weight)
    assert result.eval_loss == pytest.approx(expected.eval_loss)


def test_epochs_and_resume_across_epoch_boundary(tmp_path):
    # 40 examples / batch 4 = 10 steps per epoch; 2 epochs with a crash in the second
    reference = Regressor()
    result = train(
        job(reference), config(max_steps=None, epochs=2, checkpoint_every=3), tmp_path / "ref", progress=False
    )
    assert result.steps == 20
    crashing = job(Regressor())
    crashing.loss = crashing_loss(after_calls=14)
    with pytest.raises(Crash):
        train(crashing, config(max_steps=None, epochs=2, checkpoint_every=3), tmp_path / "run", progress=False)
    resumed = Regressor()
    train(
        job(resumed),
        config(max_steps=None, epochs=2, checkpoint_every=3),
        tmp_path / "run",
        resume=True,
        progress=False,
    )
    assert torch.equal(resumed.head.weight, reference.head.weight)


def test_resume_before_the_first_checkpoint_trains_from_the_first_step(tmp_path, caplog):
    torch.manual_seed(0)
    fresh = job()
    train(fresh, config(), tmp_path / "fresh", progress=False)
    torch.manual_seed(0)
    resumed = job()
    result = train(resumed, config(), tmp_path / "killed-early", resume=True, progress=False)
    assert "no checkpoint in" in caplog.text and "training from the first step" in caplog.text
    assert result.resumed_from is None
    assert torch.equal(resumed.model.head.weight, fresh.model.head.weight)


def test_checkpoints_are_pruned_to_keep(tmp_path):
    train(job(), config(checkpoint_every=2, keep_checkpoints=2), tmp_path, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-00000008", "step-00000010"]


def test_no_trainable_parameters_is_a_clear_error(tmp_path):
    frozen = Regressor().requires_grad_(False)
    with pytest.raises(PolyadaptError, match="no trainable parameters"):
        train(job(frozen), config(), tmp_path, progress=False)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_schedules_warm_up_then_decay(kind):
    factor = lr_lambda(kind, warmup_steps=10, total_steps=110)
    assert factor(0) < factor(5) < factor(9) <= 1.0
    assert factor(10) == pytest.approx(1.0)
    if kind == "constant":
        assert factor(109) == 1.0
    else:
        assert factor(60) == pytest.approx(0.5, abs=0.02) and factor(110) == pytest.approx(0.0, abs=1e-9)


def test_runs_in_one_process_may_use_different_precisions(tmp_path):
    first = train(job(), config(precision="fp32"), tmp_path / "a", progress=False)
    second = train(job(), config(precision="bf16"), tmp_path / "b", progress=False)
    assert (first.precision, second.precision) == ("fp32", "bf16")
    assert second.train_loss is not None and second.train_loss == second.train_loss  # not NaN


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    broken = job()
    broken.loss = lambda model, batch: model(batch) * float("nan")
    with pytest.raises(PolyadaptError, match="training loss became nan at step 1"):
        train(broken, config(), tmp_path, progress=False)


def test_every_evaluation_is_logged_and_the_log_is_written_as_the_run_goes(tmp_path, capsys):
    """eval_every off the log_every grid still lands in loss.csv; a run that dies mid-way
    leaves the log of the steps it finished; output to a pipe gets a line per logged step."""
    train(job(), config(eval_every=5, log_every=4), tmp_path / "run", progress=True)
    log = json.loads((tmp_path / "run" / "logs" / "loss.json").read_text())
    assert [r["step"] for r in log] == [4, 5, 8, 10, 12]
    assert [r["step"] for r in log if r.get("eval_loss") is not None] == [5, 10, 12]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("training step")]
    assert [line.split()[2] for line in lines] == ["4/12", "5/12", "8/12", "10/12", "12/12"]
    assert "eval " in lines[1] and "eval " not in lines[0]

    crashing = job()
    crashing.loss = crashing_loss(after_calls=9, exc=RuntimeError)
    with pytest.raises(RuntimeError):
        train(crashing, config(log_every=4), tmp_path / "crash", progress=False)
    assert [r["step"] for r in json.loads((tmp_path / "crash" / "logs" / "loss.json").read_text())] == [4, 8]
