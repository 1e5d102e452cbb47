"""Experiment trackers: a run reported to a local MLflow store and TensorBoard event files can
be watched there (parameters, per-step figures, evaluation, artifacts, dataset digests), and a
tracker that is missing or unreachable stops the run before anything trains."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_config
from polyadapt import runner
from polyadapt.cli import app
from polyadapt.config import RunConfig, load_config
from polyadapt.errors import ConfigError

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


@pytest.fixture(autouse=True)
def no_outside_mlflow(monkeypatch):
    """The user's own MLflow settings would send the runs elsewhere."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TAGS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pm():
    import polyadapt_text

    from polyadapt.plugins import PluginManager

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})


def _tracked_config(tmp_path: Path, tiny_llama: Path, text_data: dict[str, Path], *extra: str, **training) -> RunConfig:
    path = make_config(tmp_path, tiny_llama, text_data, **training)
    return load_config(path, ["tracking.log_with=[mlflow, tensorboard]", "evaluation.num_samples=0", *extra])


def _mlflow_run(run_dir: Path):
    from mlflow import MlflowClient

    tracking = json.loads((run_dir / "run.json").read_text())["tracking"]
    client = MlflowClient(tracking_uri=tracking["mlflow_uri"])
    return client, client.get_run(tracking["mlflow_run_id"]), tracking


@pytest.mark.slow
def test_a_run_can_be_watched_in_mlflow_and_tensorboard(pm, tiny_llama, text_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = _tracked_config(tmp_path, tiny_llama, text_data, max_steps=4, eval_every=2)
    run, _, report = runner.adapt(pm, config)
    assert report is not None
    log = json.loads((run.dir / "logs" / "loss.json").read_text())
    assert [record["step"] for record in log] == [1, 2, 3, 4]

    # MLflow's global URI did not leak into the user's variable: the next run resolves its own store
    assert "MLFLOW_TRACKING_URI" not in os.environ
    client, mlrun, tracking = _mlflow_run(run.dir)
    # the local default: an SQLite store beside the runs, not the working directory
    assert tracking["mlflow_uri"] == f"sqlite:///{(tmp_path / 'runs' / 'tracking' / 'mlflow.db').resolve()}"
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == run.id
    assert client.get_experiment(mlrun.info.experiment_id).name == "text-generation"
    params, tags = mlrun.data.params, mlrun.data.tags
    assert params["training.learning_rate"] == "0.005" and params["lora.r"] == "8"
    assert params["base_model.id"] == str(tiny_llama)
    assert not any(key.startswith("tracking.") for key in params)
    assert tags["polyadapt.run_id"] == run.id and tags["polyadapt.task"] == "text-generation"
    assert tags["polyadapt.config_hash"] == config.hash()

    # one point per logged step, the very figures of the loss log
    history = client.get_metric_history(mlrun.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["train_loss"]) for r in log]
    for figure in ("learning_rate", "tokens_per_s", "epoch"):
        assert [m.step for m in client.get_metric_history(mlrun.info.run_id, figure)] == [1, 2, 3, 4]
    eval_steps = [m.step for m in client.get_metric_history(mlrun.info.run_id, "eval_loss")]
    assert eval_steps == [2, 4]

    # the evaluation table: base and adapted of every row
    metrics = json.loads((run.dir / "metrics.json").read_text())["metrics"]
    assert metrics
    for row in metrics:
        for side in ("base", "adapted"):
            name = f"eval/{row['dataset']}/{row['metric']}/{side}".replace("(", "_").replace(")", "_")
            assert mlrun.data.metrics[name] == pytest.approx(row[side])

    def listed(path: str | None = None) -> set[str]:
        return {item.path for item in client.list_artifacts(mlrun.info.run_id, path)}

    assert {"run.json", "config.yaml", "metrics.json", "data_summary.json"} <= listed()
    assert "adapter/adapter_model.safetensors" in listed("adapter")
    assert "logs/loss.png" in listed("logs")
    assert "lineage/manifests/train.json" in listed("lineage/manifests")
    assert {"evaluation/table.md", "evaluation/table.json"} <= listed("evaluation")
    kept = Path(client.download_artifacts(mlrun.info.run_id, "run.json", str(tmp_path / "download")))
    assert json.loads(kept.read_text())["status"] == "completed"

    # the datasets as inputs, with the lineage manifest's root hash
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    inputs = {
        {tag.key: tag.value for tag in item.tags}["mlflow.data.context"]: item for item in mlrun.inputs.dataset_inputs
    }
    assert {"train", "eval"} <= set(inputs)
    train_input = inputs["train"]
    assert train_input.dataset.digest == manifest["root_hash"][:36]
    assert {tag.key: tag.value for tag in train_input.tags}["root_hash"] == manifest["root_hash"]

    # TensorBoard: the same figures as scalars, one event per logged step, and the table as text
    events = EventAccumulator(str(tmp_path / "runs" / "tracking" / "tensorboard" / run.id))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "learning_rate", "tokens_per_s", "eval_loss"} <= scalars
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("train_loss")] == [
        (r["step"], round(r["train_loss"], 5)) for r in log
    ]
    assert any(tag.startswith("eval/") and tag.endswith("/adapted") for tag in scalars)
    assert "evaluation/text_summary" in events.Tags()["tensors"]


@pytest.mark.slow
def test_an_interrupted_run_ends_killed_and_resumes_in_the_same_mlflow_run(
    pm, tiny_llama, text_data, tmp_path, monkeypatch
):
    def interrupt(run):
        raise KeyboardInterrupt

    config = _tracked_config(tmp_path, tiny_llama, text_data, "tracking.log_with=[mlflow]", max_steps=2)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(runner, "write_model_card", interrupt)
        runner.adapt(pm, config)
    run_dir = tmp_path / "runs" / "test-run"
    client, mlrun, _ = _mlflow_run(run_dir)
    assert mlrun.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(mlrun.info.run_id, "train_loss")] == [1, 2]
    kept = Path(client.download_artifacts(mlrun.info.run_id, "run.json", str(tmp_path / "download")))
    assert json.loads(kept.read_text())["status"] == "interrupted"

    runner.adapt(pm, config, resume=True)
    _, resumed, _ = _mlflow_run(run_dir)
    assert resumed.info.run_id == mlrun.info.run_id and resumed.info.status == "FINISHED"
    assert len(client.search_runs([mlrun.info.experiment_id])) == 1


def test_tracking_settings_are_checked_with_the_field_named(tiny_llama, text_data, tmp_path):
    path = make_config(tmp_path, tiny_llama, text_data)
    with pytest.raises(ConfigError, match=r"tracking\.log_with"):
        load_config(path, ["tracking.log_with=[neptune]"])
    with pytest.raises(ConfigError, match="mlflow is named more than once"):
        load_config(path, ["tracking.log_with=[mlflow, mlflow]"])
    plain = load_config(path)
    tracked = load_config(path, ["tracking.log_with=[tensorboard]", "tracking.dir=elsewhere"])
    # where a run is watched is not part of what it trains
    assert tracked.hash() == plain.hash()
    assert tracked.tracking.dir == (tmp_path / "elsewhere").resolve()


def test_a_tracker_that_is_not_installed_stops_the_run_before_it_starts(
    pm, tiny_llama, text_data, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what find_spec reports for a missing package
    config = load_config(make_config(tmp_path, tiny_llama, text_data), ["tracking.log_with=[tensorboard, wandb]"])
    with pytest.raises(ConfigError) as caught:
        runner.adapt(pm, config)
    assert "tracking.log_with names wandb" in str(caught.value) and "pip install wandb" in str(caught.value)
    assert not (tmp_path / "runs" / "test-run").exists()


def test_an_unreachable_mlflow_server_is_one_clear_error_before_training(tiny_llama, text_data, tmp_path):
    config_path = make_config(tmp_path, tiny_llama, text_data)
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        [
            "adapt",
            str(config_path),
            "--set",
            "tracking.log_with=[mlflow]",
            "--set",
            "tracking.mlflow_uri=http://user:secret@127.0.0.1:9",
        ],
    )
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "tracking.mlflow_uri" in output and "http://127.0.0.1:9" in output
    assert "secret" not in output and "Traceback" not in output
    assert time.monotonic() - started < 60
    # stopped before the run folder was kept, let alone a step trained
    assert not (tmp_path / "runs" / "test-run").exists()


def test_a_tracker_failing_mid_run_is_dropped_with_a_warning_and_training_goes_on():
    from types import SimpleNamespace

    from polyadapt.trackers import ExperimentTrackers

    class Broken:
        def log(self, values, step=None):
            raise ConnectionError("http://user:secret@mlflow:5000 went away")

    class Working:
        def __init__(self):
            self.logged = []

        def log(self, values, step=None):
            self.logged.append((step, values))

    said: list[str] = []
    trackers = ExperimentTrackers(SimpleNamespace(say=said.append))
    working = Working()
    trackers.started = {"mlflow": Broken(), "tensorboard": working}
    with pytest.warns(UserWarning, match="mlflow tracking stopped .*went away"):
        trackers.log_step({"step": 1, "train_loss": 2.0, "tokens_per_s": None, "elapsed_s": 0.5})
    trackers.log_step({"step": 2, "train_loss": 1.5})
    assert list(trackers.started) == ["tensorboard"]
    assert working.logged == [(1, {"train_loss": 2.0, "elapsed_s": 0.5}), (2, {"train_loss": 1.5})]
    assert len(said) == 1 and "secret" not in said[0]
