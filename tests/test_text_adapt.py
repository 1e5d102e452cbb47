"""The text plugin end to end: adapt lowers domain perplexity, the adapter is plain PEFT,
an interrupted run resumes to the same weights, and evaluate re-reads a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import polyadapt.training as shared_training
import polyadapt_text.loss as text_loss
from conftest import make_config
from polyadapt import runner
from polyadapt.cli import app
from polyadapt.config import load_config
from polyadapt.errors import PolyadaptError
from polyadapt.plugins import PluginManager


@pytest.fixture(scope="module")
def pm():
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})


@pytest.fixture
def captured_models(monkeypatch):
    """The trained model objects, captured from the plugin's call to the shared trainer."""
    models = []
    real_train = shared_training.train

    def spy(job, *args, **kwargs):
        result = real_train(job, *args, **kwargs)
        models.append(job.model.lm)
        return result

    monkeypatch.setattr(shared_training, "train", spy)
    return models


def test_adapt_beats_base_on_domain_and_writes_run_folder(pm, tiny_llama, text_data, tmp_path, captured_models):
    config = load_config(make_config(tmp_path, tiny_llama, text_data))
    run, adapter, report = runner.adapt(pm, config)

    domain = next(r for r in report.rows if r.dataset.startswith("domain"))
    assert domain.adapted < domain.base / 3, domain
    assert {r.dataset for r in report.rows} == {"domain (held-out)", "general"}
    assert report.samples and {"prompt", "base", "adapted"} <= set(report.samples[0])

    for name in (
        "config.yaml",
        "run.json",
        "data_summary.json",
        "input_profile.json",
        "metrics.json",
        "adapter.json",
        "logs/loss.csv",
        "logs/loss.json",
        "logs/loss.png",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
    ):
        assert (run.dir / name).is_file(), name
    record = json.loads((run.dir / "run.json").read_text())
    assert record["status"] == "completed" and record["config_hash"] == config.hash()
    summary = json.loads((run.dir / "data_summary.json").read_text())
    assert summary["train_records"] == 80 and summary["heldout_records"] == 16
    profile = json.loads((run.dir / "input_profile.json").read_text())  # the drift baseline
    assert profile["samples"] == 80 and {"chars", "words", "oov_share"} <= set(profile["numeric"])
    assert not list(run.dir.glob("**/*.tmp")), "temporary files left behind"

    # the adapter is plain PEFT: loading it without polyadapt gives the trained model's logits
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trained = captured_models[0].eval()
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run.adapter_dir).eval()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, trained(input_ids=ids).logits, atol=1e-5)
        with plain.disable_adapter():
            base_logits = plain(input_ids=ids).logits
    assert not torch.allclose(base_logits, plain(input_ids=ids).logits, atol=1e-3)


def test_interrupted_run_resumes_to_identical_adapter(pm, tiny_llama, text_data, tmp_path, monkeypatch):
    overrides = dict(max_steps=12, checkpoint_every=4)
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    reference = load_config(
        make_config(reference_dir, tiny_llama, text_data, **overrides), ["lora.dropout=0.1", "output.name=reference"]
    )
    reference.evaluation.enabled = False
    ref_run, _, _ = runner.adapt(pm, reference)

    config = load_config(make_config(tmp_path, tiny_llama, text_data, **overrides), ["lora.dropout=0.1"])
    config.evaluation.enabled = False
    real_loss, calls = text_loss.summed_loss, {"n": 0}

    def interrupting_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(text_loss, "summed_loss", interrupting_loss)
    with pytest.raises(KeyboardInterrupt):
        runner.adapt(pm, config)
    run_dir = Path(config.output.dir) / "test-run"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / "adapter").exists()

    monkeypatch.setattr(text_loss, "summed_loss", real_loss)
    run, adapter, _ = runner.adapt(pm, config, resume=True)
    assert run.dir == run_dir.resolve()
    assert adapter.train_metrics["resumed_from"] == 9
    resumed = load_file(run.adapter_dir / "adapter_model.safetensors")
    expected = load_file(ref_run.adapter_dir / "adapter_model.safetensors")
    assert resumed.keys() == expected.keys()
    for name in expected:
        assert torch.equal(resumed[name], expected[name]), name


def test_cli_adapt_then_evaluate_and_friendly_errors(tiny_llama, text_data, tmp_path):
    cli = CliRunner()
    config_path = make_config(tmp_path, tiny_llama, text_data, max_steps=3)
    result = cli.invoke(app, ["adapt", str(config_path), "--set", "evaluation.num_samples=0"])
    assert result.exit_code == 0, result.output
    assert "domain (held-out)" in result.output
    run_dir = tmp_path / "runs" / "test-run"
    (run_dir / "metrics.json").unlink()
    result = cli.invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]

    # the same run name again is refused, not overwritten
    again = cli.invoke(app, ["adapt", str(config_path), "--set", "evaluation.num_samples=0"])
    assert again.exit_code == 1 and "already holds a run" in again.output

    bad = cli.invoke(app, ["adapt", str(config_path), "--set", "training.schedule=wavy"])
    assert bad.exit_code == 2 and "training.schedule" in bad.output and "Traceback" not in bad.output

    missing = cli.invoke(
        app, ["adapt", str(config_path), "--set", "output.name=other", "--set", f"data.train={tmp_path / 'nope.jsonl'}"]
    )
    assert missing.exit_code == 1 and "nope.jsonl: no such data file" in missing.output
    assert not (tmp_path / "runs" / "other" / "adapter").exists()


def test_chat_data_trains_on_assistant_turns(pm, tiny_llama, chat_data, text_data, tmp_path):
    data = {**text_data, "train": chat_data, "eval": chat_data}
    config = load_config(make_config(tmp_path, tiny_llama, data, max_steps=15))
    run, adapter, report = runner.adapt(pm, config)
    domain = next(r for r in report.rows if r.dataset.startswith("domain"))
    assert domain.adapted < domain.base / 3
    assert json.loads((run.dir / "data_summary.json").read_text())["datasets"][0]["kind"] == "chat"


def test_a_reused_run_name_is_refused_instead_of_overwriting_lineage(pm, tiny_llama, text_data, tmp_path):
    """The store keys runs by name: a second fresh run called `test-run` (its old folder
    deleted, or another output.dir) would overwrite the first one's lineage."""
    config = load_config(make_config(tmp_path, tiny_llama, text_data, max_steps=1))
    config.evaluation.enabled = False
    first, _, _ = runner.adapt(pm, config)
    other = config.model_copy(deep=True)
    other.output.dir = tmp_path / "elsewhere"
    with pytest.raises(PolyadaptError, match="already in the lineage store"):
        runner.adapt(pm, other)
    assert not (tmp_path / "elsewhere" / "test-run").exists(), "the refused run left its folder behind"
