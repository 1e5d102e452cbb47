"""A gate per task: the run config (``gate:``) or the task names the metrics that must
improve and those that must not fall; the code task's default holds pass@k and FIM exact
match to "not worse" and warns when they did not move."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import typer
from polyadapt_code.task import CodeGenerationTask
from typer.testing import CliRunner

from polyadapt.config import parse_config
from polyadapt.errors import ConfigError
from polyadapt.lineage import cli
from polyadapt.lineage.metricgate import MetricGate, check_metric_gate, gate_of_run, matches
from polyadapt.lineage.registry import PromotionGate, PromotionRefused, check_promotion, normalise_metric_rows
from polyadapt.lineage.store import LineageStore
from polyadapt.types import EvalReport, MetricRow

BASE_CONFIG = "task: code-generation\nbase_model: m\ndata: {train: repo}\n"


def rows(*, ppl=(8.97, 6.92), general=(27.3, 24.0), fim=(0.01, 0.01), pass1=(0.0, 0.0), tasks_role="domain"):
    """The boltons run of issue 18: perplexity better, FIM and pass@1 flat."""
    return [
        MetricRow("held-out files", "perplexity", *ppl, role="domain"),
        MetricRow("general", "perplexity", *general, role="general"),
        MetricRow("held-out files", "next-line exact match", 0.073, 0.10, lower_is_better=False, role="domain"),
        MetricRow("held-out files", "FIM exact match", *fim, lower_is_better=False, role="domain"),
        MetricRow("tasks", "pass@1", *pass1, lower_is_better=False, role=tasks_role),
    ]


def test_the_policy_alone_promotes_an_adapter_whose_task_metrics_did_not_move():
    # the issue: perplexity carries the promotion; nothing says pass@1 and FIM stood still
    result = check_promotion(rows(), PromotionGate())
    assert result.passed and result.warnings == []


def test_the_code_tasks_default_gate_warns_when_its_task_metrics_are_flat():
    result = check_promotion(rows(), PromotionGate(), CodeGenerationTask.gate)
    assert result.passed
    flat = " ".join(result.warnings)
    assert "tasks pass@1 did not move" in flat and "FIM exact match did not move" in flat
    gated = {(c.metric, c.rule) for c in result.checks if c.rule}
    assert gated == {("pass@1", "no_regress"), ("FIM exact match", "no_regress")}


def test_the_code_tasks_default_gate_refuses_a_falling_pass_at_k_the_policy_would_allow():
    # as a general (regression) set, pass@1 may fall 5% under the policy; the task's gate says no fall
    falling = rows(pass1=(0.50, 0.49), tasks_role="general")
    assert check_promotion(falling, PromotionGate()).passed
    result = check_promotion(falling, PromotionGate(), CodeGenerationTask.gate)
    assert not result.passed
    assert any("task gate tasks pass@1" in line and "must not fall" in line for line in result.failures())


def test_a_default_gate_skips_what_the_run_did_not_measure_or_only_reports():
    without_tasks = [r for r in rows() if r.metric != "pass@1"]
    result = check_promotion(without_tasks, PromotionGate(), CodeGenerationTask.gate)
    assert result.passed and any("'pass@*'" in w and "skips it" in w for w in result.warnings)
    reported_only = check_promotion(
        rows(pass1=(0.5, 0.1), tasks_role="other"), PromotionGate(), CodeGenerationTask.gate
    )
    assert reported_only.passed  # tasks_role: other is "reported only", the default gate respects it


def test_a_config_gate_requires_an_improvement_by_its_margin():
    gate = MetricGate.from_config({"improve": {"pass@1": 0.05}, "no_regress": ["FIM exact match"]})
    flat = check_promotion(rows(), PromotionGate(), gate)
    assert not flat.passed
    assert any("task gate tasks pass@1" in line and "must improve by >= 0.05" in line for line in flat.failures())
    small = check_promotion(rows(pass1=(0.0, 0.04)), PromotionGate(), gate)
    assert not small.passed
    enough = check_promotion(rows(pass1=(0.0, 0.0833)), PromotionGate(), gate)
    assert enough.passed, enough.failures()
    # a margin of 0 still needs a gain, and the margin is in the metric's units (lower perplexity is better)
    assert not check_metric_gate(_normalised(rows()), MetricGate(improve={"pass@1": 0})).checks[0].passed
    assert (
        check_metric_gate(_normalised(rows()), MetricGate(improve={"held-out files/perplexity": 2.0})).checks[0].passed
    )
    assert (
        not check_metric_gate(_normalised(rows()), MetricGate(improve={"held-out files/perplexity": 2.1}))
        .checks[0]
        .passed
    )


def test_a_config_gate_fails_on_a_metric_the_run_does_not_have():
    result = check_promotion(rows(), PromotionGate(), MetricGate.from_config({"no_regress": ["pass@10"]}))
    assert not result.passed
    assert any("'pass@10'" in p and "gate.no_regress" in p and "tasks/pass@1" in p for p in result.problems)


def test_not_a_number_fails_a_gated_metric():
    result = check_promotion(rows(pass1=(0.2, math.nan)), PromotionGate(), MetricGate(no_regress=("pass@1",)))
    assert not result.passed


@pytest.mark.parametrize(
    ("pattern", "dataset", "metric", "expected"),
    [
        ("pass@1", "tasks", "pass@1", True),
        ("pass@1", "tasks", "pass@10", False),
        ("pass@*", "tasks", "pass@10", True),
        ("tasks/pass@*", "tasks", "pass@1", True),
        ("tasks/pass@*", "humaneval", "pass@1", False),
        ("*/perplexity", "held-out files", "perplexity", True),
    ],
)
def test_metric_names_and_patterns(pattern, dataset, metric, expected):
    assert matches(pattern, dataset, metric) is expected


def test_the_run_config_gate_replaces_the_tasks_and_an_empty_one_switches_it_off():
    config_gate, source = gate_of_run({"improve": {"pass@1": 0.1}, "no_regress": []}, CodeGenerationTask.gate, "t")
    assert config_gate == MetricGate(improve={"pass@1": 0.1}) and source == "the run config's gate"
    empty, _ = gate_of_run({"improve": {}, "no_regress": []}, CodeGenerationTask.gate, "t")
    assert empty == MetricGate() and check_promotion(rows(), PromotionGate(), empty).warnings == []
    default, source = gate_of_run(None, CodeGenerationTask.gate, "code-generation")
    assert default is CodeGenerationTask.gate and "code-generation" in source


def test_the_gate_block_is_validated_with_the_field_named():
    config = parse_config(BASE_CONFIG + "gate:\n  improve: {pass@1: 0.05}\n  no_regress: [FIM exact match]\n", "r.yaml")
    assert config.gate is not None and config.gate.improve == {"pass@1": 0.05}
    assert parse_config(BASE_CONFIG, "r.yaml").gate is None
    cases = {
        "gate:\n  improve: {pass@1: -0.1}\n": "gate.improve.pass@1",
        "gate:\n  improv: {pass@1: 0.1}\n": "did you mean 'improve'",
        "gate:\n  no_regress: ['']\n": "gate.no_regress: entry 0 is empty",
        "gate:\n  improve: {pass@1: 0.1}\n  no_regress: [pass@1]\n": "both improve and no_regress",
        "gate:\n  improve: {pass@1: .inf}\n": "finite",
    }
    for block, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_config(BASE_CONFIG + block, "r.yaml")
        message = str(caught.value)  # gate: is line 4 of the file, its first field line 5
        assert message.startswith("r.yaml") and ("line 4" in message or "line 5" in message) and expected in message


def test_the_gate_does_not_change_what_a_run_is():
    gated = parse_config(BASE_CONFIG + "gate:\n  improve: {pass@1: 0.05}\n", "r.yaml")
    assert gated.hash() == parse_config(BASE_CONFIG, "r.yaml").hash()  # --resume still finds the run


def test_the_run_prints_the_verdict_and_the_flat_warning():
    from polyadapt.governance.policy import Policy
    from polyadapt.runner import _preview_gate

    said: list[str] = []
    run = SimpleNamespace(
        config=SimpleNamespace(gate=None),
        task=CodeGenerationTask(),
        gate=SimpleNamespace(policy=Policy()),
        say=said.append,
    )
    _preview_gate(run, EvalReport(rows=rows()))
    assert said[0].startswith("gate: policy 'strict' and task code-generation's default gate: pass@* must not fall")
    assert said[1] == "promotion gate: passes"
    assert any(line.startswith("  warning: tasks pass@1 did not move") for line in said)


def _normalised(metric_rows):
    return normalise_metric_rows(metric_rows)


def _store_with_run(tmp_path, config: dict) -> LineageStore:
    store = LineageStore(f"sqlite:///{tmp_path / 'lineage.db'}")
    store.start_run(
        "run-1",
        task="code-generation",
        plugin="code",
        config_hash="h",
        config=config,
        seed=1,
        environment={},
        base_model="org/base",
        datasets={},
    )
    store.register_adapter("run-1", base_model="org/base", name="repo", path="/runs/1/adapter", weights_hash="1" * 64)
    store.finish_run("run-1", status="completed", metrics=[r.__dict__ for r in rows()])
    return store


def test_the_registry_refuses_what_the_run_config_gate_refuses(tmp_path):
    with _store_with_run(tmp_path, {}) as store:
        with pytest.raises(PromotionRefused, match="pass@1"):
            store.promote("repo", gate=PromotionGate(), metric_gate=MetricGate(improve={"pass@1": 0.05}))
        assert store.promote("repo", gate=PromotionGate(), metric_gate=CodeGenerationTask.gate).status == "active"


def test_promote_applies_the_tasks_default_and_warns(tmp_path, monkeypatch):
    app = typer.Typer()
    app.add_typer(cli.adapters_app, name="adapters")
    monkeypatch.setattr(cli.console, "width", 400)
    monkeypatch.setattr(cli.err_console, "width", 400)
    db = f"sqlite:///{tmp_path / 'lineage.db'}"
    _store_with_run(tmp_path, {"gate": None}).close()
    result = CliRunner().invoke(app, ["adapters", "promote", "repo", "--db", db])
    assert result.exit_code == 0, result.output
    assert "task code-generation's default gate" in result.output
    assert "warning: tasks pass@1 did not move" in result.output


def test_promote_follows_the_gate_the_run_config_recorded(tmp_path):
    app = typer.Typer()
    app.add_typer(cli.adapters_app, name="adapters")
    db = f"sqlite:///{tmp_path / 'lineage.db'}"
    _store_with_run(tmp_path, {"gate": {"improve": {"pass@1": 0.05}, "no_regress": []}}).close()
    result = CliRunner().invoke(app, ["adapters", "promote", "repo", "--db", db])
    assert result.exit_code != 0
    assert "must improve by >= 0.05" in result.output
