"""``task_options.objective: simpo`` and ``orpo`` end to end on the tiny Llama: the preference
pairs of a DPO run, trained with the shared trainer without the reference pass (checkpoints,
--resume), evaluated base against adapted with each objective's own rewards, held to their
promotion gate; options of another objective, and data of another kind, are refused with
the fields named."""

from __future__ import annotations

import json

import polyadapt_text.dpo as text_dpo
import polyadapt_text.loss as text_loss
import polyadapt_text.objective as text_objective
import pytest
import test_dpo_run
import torch
from conftest import make_config
from polyadapt_code.options import CodeOptions
from safetensors.torch import load_file

from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.errors import ConfigError
from polyadapt.lineage.metricgate import check_metric_gate
from polyadapt.lineage.registry import normalise_metric_rows

pm, pref_data = test_dpo_run.pm, test_dpo_run.pref_data  # (the DPO run's fixtures)
DATASET = "preference pairs (held-out)"
OPTIONS = {"simpo": {"objective": "simpo", "simpo_beta": 2.0}, "orpo": {"objective": "orpo", "orpo_lambda": 0.5}}


def run_config(tmp_path, model, data, options, overrides=(), **training):
    settings = {"max_steps": 12, "learning_rate": 5e-3, "max_length": 96, **training}
    config = load_config(make_config(tmp_path, model, data, **settings), list(overrides))
    config.task_options = dict(options)
    return config


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["simpo", "orpo"])
def test_run_trains_without_reference_and_reports_its_own_rewards(
    pm,
    tiny_llama,
    pref_data,
    tmp_path,
    monkeypatch,
    objective,
):
    losses = []
    real_loss = text_objective.preference_loss

    def spy(options, model):
        loss, described = real_loss(options, model)
        losses.append(loss)
        return loss, described

    monkeypatch.setattr(text_objective, "preference_loss", spy)
    run, adapter, report = runner.adapt(pm, run_config(tmp_path, tiny_llama, pref_data, OPTIONS[objective]))

    assert [type(loss) for loss in losses] == [text_dpo.ReferenceFreeLoss] and losses[0].kind == objective
    summary = json.loads((run.dir / "data_summary.json").read_text())
    assert summary["examples"]["train_pairs"] == 24 and summary["examples"]["heldout_pairs"] == 8
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()

    rows = {(r.dataset, r.metric): r for r in report.rows}
    margin, accuracy = rows[(DATASET, "reward margin")], rows[(DATASET, "reward accuracy")]
    loss = rows[(DATASET, {"simpo": "SimPO loss", "orpo": "ORPO loss"}[objective])]
    assert margin.adapted > margin.base, margin  # rewards of the objective's own: not zero at the base
    assert accuracy.adapted >= accuracy.base and accuracy.adapted >= 0.75, accuracy
    assert loss.adapted < loss.base and loss.role == "other"
    assert rows[(DATASET, "preference accuracy")].role == "domain"
    assert rows[("general", "perplexity")].role == "general"
    assert not any(metric == "DPO loss" for _, metric in rows)

    gate = run.task.run_gate(run.config.task_options)
    assert gate is text_objective.REFERENCE_FREE_GATE
    assert all(check.passed for check in check_metric_gate(normalise_metric_rows(report), gate).checks)


@pytest.mark.slow
def test_interrupted_simpo_run_resumes_to_identical_adapter(pm, tiny_llama, pref_data, tmp_path, monkeypatch):
    overrides = dict(max_steps=6, checkpoint_every=3)
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    reference = run_config(reference_dir, tiny_llama, pref_data, OPTIONS["simpo"], ["output.name=ref"], **overrides)
    reference.evaluation.enabled = False
    ref_run, _, _ = runner.adapt(pm, reference)

    config = run_config(tmp_path, tiny_llama, pref_data, OPTIONS["simpo"], **overrides)
    config.evaluation.enabled = False
    real_loss, calls = text_loss.summed_loss, {"n": 0}

    def interrupting_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_loss(model, batch)

    monkeypatch.setattr(text_loss, "summed_loss", interrupting_loss)
    with pytest.raises(KeyboardInterrupt):
        runner.adapt(pm, config)
    monkeypatch.setattr(text_loss, "summed_loss", real_loss)
    run, adapter, _ = runner.adapt(pm, config, resume=True)
    assert adapter.train_metrics["resumed_from"] == 4
    resumed = load_file(run.adapter_dir / "adapter_model.safetensors")
    expected = load_file(ref_run.adapter_dir / "adapter_model.safetensors")
    assert resumed.keys() == expected.keys()
    for name in expected:
        assert torch.equal(resumed[name], expected[name]), name


def test_orpo_on_the_code_task_trains_pairs(pm, tiny_llama, pref_data, tmp_path):
    config = run_config(tmp_path, tiny_llama, pref_data, OPTIONS["orpo"], ["task=code-generation"], max_steps=2)
    config.evaluation.enabled = False
    run, _, _ = runner.adapt(pm, config)
    assert json.loads((run.dir / "data_summary.json").read_text())["examples"]["train_pairs"] == 24
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert pm.task("code-generation").run_gate({"objective": "orpo"}) is text_objective.REFERENCE_FREE_GATE


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"objective": "simpo", "dpo_beta": 0.2}, r"task_options.dpo_beta is objective dpo's.*objective is simpo"),
        (
            {"objective": "orpo", "simpo_gamma": 1.0},
            r"task_options.simpo_gamma is objective simpo's.*objective is orpo",
        ),
        ({"objective": "dpo", "orpo_lambda": 0.2}, r"task_options.orpo_lambda is objective orpo's.*objective is dpo"),
        ({"simpo_beta": 2.5}, r"task_options.simpo_beta is objective simpo's.*objective is sft"),
        ({"objective": "simpo", "simpo_beta": 0}, r"task_options.simpo_beta"),
        ({"objective": "orpo", "orpo_lamda": 0.2}, r"orpo_lamda.*orpo_lambda"),
        ({"objective": "kto"}, r"task_options.objective"),
    ],
)
def test_bad_options_are_refused_naming_the_field(pm, tiny_llama, pref_data, tmp_path, options, named):
    with pytest.raises(ConfigError, match=named):
        runner.adapt(pm, run_config(tmp_path, tiny_llama, pref_data, options))


def test_the_options_defaults_and_the_code_task_shares_them():
    options = CodeOptions(objective="simpo")
    assert (options.simpo_beta, options.simpo_gamma, options.orpo_lambda) == (2.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="orpo_lambda is objective orpo's"):
        CodeOptions(objective="simpo", orpo_lambda=0.3)


@pytest.mark.parametrize("objective", ["simpo", "orpo"])
def test_objective_and_data_that_do_not_match_are_refused(pm, tiny_llama, pref_data, text_data, tmp_path, objective):
    on_text = run_config(tmp_path, tiny_llama, text_data, {"objective": objective}, ["data.kind=text", "output.name=a"])
    with pytest.raises(ConfigError, match=rf"objective is {objective} but data.kind is text"):
        runner.adapt(pm, on_text)
    with_replay = run_config(
        tmp_path,
        tiny_llama,
        pref_data,
        {"objective": objective},
        [f"data.replay={pref_data['general']}", "data.replay_fraction=0.2", "output.name=b"],
    )
    with pytest.raises(ConfigError, match=rf"data.replay.*objective: {objective}"):
        runner.adapt(pm, with_replay)


def test_each_objective_has_its_gate(pm):
    task = pm.task("text-generation")
    assert task.run_gate({"objective": "dpo"}) is text_objective.DPO_GATE
    assert task.run_gate({"objective": "simpo"}) is task.run_gate({"objective": "orpo"})
    assert task.run_gate({"objective": "sft"}) is task.gate and task.run_gate({}) is task.gate
    gate = task.run_gate({"objective": "simpo"})

    def rows(margin, reward_accuracy, preference_accuracy):
        common = {"dataset": DATASET, "lower_is_better": False, "role": "domain"}
        return [
            {**common, "metric": "reward margin", "base": margin[0], "adapted": margin[1]},
            {**common, "metric": "reward accuracy", "base": reward_accuracy[0], "adapted": reward_accuracy[1]},
            {
                **common,
                "metric": "preference accuracy",
                "base": preference_accuracy[0],
                "adapted": preference_accuracy[1],
            },
        ]

    assert all(c.passed for c in check_metric_gate(rows((-0.1, 0.4), (0.5, 0.7), (0.5, 0.5)), gate).checks)
    failed = {
        c.metric for c in check_metric_gate(rows((0.2, 0.1), (0.6, 0.5), (0.5, 0.4)), gate).checks if not c.passed
    }
    assert failed == {"reward margin", "reward accuracy", "preference accuracy"}
