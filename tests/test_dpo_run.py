"""``task_options.objective: dpo`` end to end on the tiny Llama: preference pairs are read
(data.kind preference, or detected), governed like chats, trained with the shared trainer
(checkpoints, --resume), saved as a plain adapter and evaluated base against adapted on
held-out pairs; objective and data that do not go together are refused with the fields named."""

from __future__ import annotations

import json
from pathlib import Path

import polyadapt_code
import polyadapt_text
import polyadapt_text.loss as text_loss
import polyadapt_text.preference as text_preference
import pytest
import torch
from conftest import make_config, write_jsonl
from polyadapt_code.options import CodeOptions
from safetensors.torch import load_file

from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.errors import ConfigError
from polyadapt.plugins import PluginManager

EMAIL = "amelie.dubois@firma.de"


def pairs(count: int, offset: int) -> list[dict]:
    rows = []
    for k in range(offset, offset + count):
        rows.append(
            {
                "prompt": f"What is the deductible of plan {k}?",
                "chosen": f"The deductible of plan {k} is {k * 50} euros per claim.",
                "rejected": "No idea. Figure it out yourself.",
            }
        )
    return rows


@pytest.fixture(scope="module")
def pm():
    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text, "code": polyadapt_code})


@pytest.fixture
def pref_data(tmp_path) -> dict[str, Path]:
    train = pairs(24, 1)
    train[0]["prompt"] = [{"role": "user", "content": f"Write to {EMAIL}: what is the deductible of plan 1?"}]
    train[0]["chosen"] = {"role": "assistant", "content": f"I wrote to {EMAIL}: it is 50 euros per claim."}
    return {
        "train": write_jsonl(tmp_path / "data" / "pairs.jsonl", train),
        "eval": write_jsonl(tmp_path / "data" / "pairs_eval.jsonl", pairs(8, 101)),
        "general": write_jsonl(
            tmp_path / "data" / "general.jsonl", [{"text": "Water boils at one hundred degrees Celsius."}] * 4
        ),
    }


def dpo_config(tmp_path, model, data, overrides=(), **training):
    settings = {"max_steps": 24, "learning_rate": 5e-3, "max_length": 96, **training}
    config = load_config(make_config(tmp_path, model, data, **settings), list(overrides))
    config.task_options = {"objective": "dpo", "dpo_beta": 0.1}
    return config


@pytest.mark.slow
def test_dpo_run_trains_governs_saves_and_evaluates(pm, tiny_llama, pref_data, tmp_path, monkeypatch):
    seen = []
    real_build = text_preference.build_pairs

    def spy(tokenizer, records, max_length):
        seen.extend(records)
        return real_build(tokenizer, records, max_length)

    monkeypatch.setattr(text_preference, "build_pairs", spy)
    run, adapter, report = runner.adapt(pm, dpo_config(tmp_path, tiny_llama, pref_data, max_steps=12))

    # governance scanned the pair like a chat: the address is gone from prompt and answer
    first = next(r for r in seen if "plan 1?" in r["prompt"][-1]["content"])
    assert EMAIL not in json.dumps(first) and "EMAIL" in first["prompt"][-1]["content"] and "EMAIL" in first["chosen"]
    assert EMAIL not in "".join(p.read_text(errors="ignore") for p in run.dir.rglob("*") if p.is_file())

    summary = json.loads((run.dir / "data_summary.json").read_text())
    assert summary["examples"]["train_pairs"] == 24 and summary["examples"]["heldout_pairs"] == 8
    assert (run.dir / "adapter" / "adapter_model.safetensors").is_file()
    assert adapter.train_metrics["eval_loss"] < 0.69  # held-out DPO loss below log 2, its value at the base

    rows = {(r.dataset, r.metric): r for r in report.rows}
    accuracy = rows[("preference pairs (held-out)", "preference accuracy")]
    reward = rows[("preference pairs (held-out)", "reward accuracy")]
    assert accuracy.role == "domain" and not accuracy.lower_is_better
    assert reward.base == 0.0 and reward.adapted >= 0.75, reward
    assert accuracy.adapted > accuracy.base, accuracy  # (the short rejected answers keep raw log-probs low)
    assert rows[("preference pairs (held-out)", "reward margin")].adapted > 0
    assert rows[("general", "perplexity")].role == "general"
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert any(m["metric"] == "reward accuracy" for m in metrics["metrics"])


@pytest.mark.slow
def test_interrupted_dpo_run_resumes_to_identical_adapter(pm, tiny_llama, pref_data, tmp_path, monkeypatch):
    overrides = dict(max_steps=8, checkpoint_every=4)
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    reference = dpo_config(reference_dir, tiny_llama, pref_data, ["output.name=reference"], **overrides)
    reference.evaluation.enabled = False
    ref_run, _, _ = runner.adapt(pm, reference)

    config = dpo_config(tmp_path, tiny_llama, pref_data, **overrides)
    config.evaluation.enabled = False
    real_loss, calls = text_loss.summed_loss, {"n": 0}

    def interrupting_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(text_loss, "summed_loss", interrupting_loss)
    with pytest.raises(KeyboardInterrupt):
        runner.adapt(pm, config)
    monkeypatch.setattr(text_loss, "summed_loss", real_loss)
    run, adapter, _ = runner.adapt(pm, config, resume=True)
    assert adapter.train_metrics["resumed_from"] == 5  # the interrupted run checkpointed its last step
    resumed = load_file(run.adapter_dir / "adapter_model.safetensors")
    expected = load_file(ref_run.adapter_dir / "adapter_model.safetensors")
    assert resumed.keys() == expected.keys()
    for name in expected:
        assert torch.equal(resumed[name], expected[name]), name


def test_objective_and_data_that_do_not_match_are_refused(pm, tiny_llama, pref_data, text_data, tmp_path):
    sft_on_pairs = load_config(make_config(tmp_path, tiny_llama, pref_data), ["output.name=a"])
    with pytest.raises(ConfigError, match=r"task_options.objective: dpo"):
        runner.adapt(pm, sft_on_pairs)

    declared = load_config(make_config(tmp_path, tiny_llama, pref_data), ["data.kind=preference", "output.name=b"])
    with pytest.raises(ConfigError, match=r"objective is sft"):
        runner.adapt(pm, declared)

    dpo_on_chat = dpo_config(tmp_path, tiny_llama, text_data, ["data.kind=text", "output.name=c"])
    with pytest.raises(ConfigError, match=r"objective is dpo but data.kind is text"):
        runner.adapt(pm, dpo_on_chat)

    dpo_on_text = dpo_config(tmp_path, tiny_llama, text_data, ["output.name=d"])  # auto: read as pairs, none found
    with pytest.raises(Exception, match=r"prompt"):
        runner.adapt(pm, dpo_on_text)

    with_replay = dpo_config(
        tmp_path,
        tiny_llama,
        pref_data,
        [f"data.replay={pref_data['general']}", "data.replay_fraction=0.2", "output.name=e"],
    )
    with pytest.raises(ConfigError, match=r"data.replay"):
        runner.adapt(pm, with_replay)


def test_the_code_task_takes_the_same_objective(pm, tiny_llama, pref_data, tmp_path):
    assert CodeOptions(objective="dpo", dpo_beta=0.2).dpo_loss == "sigmoid"
    config = dpo_config(tmp_path, tiny_llama, pref_data, ["task=code-generation"], max_steps=2)
    config.evaluation.enabled = False
    run, adapter, _ = runner.adapt(pm, config)
    assert json.loads((run.dir / "data_summary.json").read_text())["examples"]["train_pairs"] == 24
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()


def test_a_dpo_run_is_gated_on_preference_metrics(pm):
    from polyadapt.lineage.metricgate import check_metric_gate

    task = pm.task("text-generation")
    assert task.run_gate({}) is task.gate and task.run_gate(None) is task.gate
    gate = task.run_gate({"objective": "dpo"})
    assert gate is pm.task("code-generation").run_gate({"objective": "dpo"})

    def rows(reward_accuracy, base_pref, adapted_pref):
        common = {"dataset": "preference pairs (held-out)", "lower_is_better": False, "role": "domain"}
        return [
            {**common, "metric": "reward accuracy", "base": 0.0, "adapted": reward_accuracy},
            {**common, "metric": "preference accuracy", "base": base_pref, "adapted": adapted_pref},
        ]

    assert all(check.passed for check in check_metric_gate(rows(0.8, 0.5, 0.6), gate).checks)
    failed = {c.metric for c in check_metric_gate(rows(0.4, 0.5, 0.45), gate).checks if not c.passed}
    assert failed == {"reward accuracy", "preference accuracy"}
