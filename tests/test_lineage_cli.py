"""The `lineage` and `adapters` commands, on a store prepared through the API."""

from __future__ import annotations

import json

import pytest
import typer
from polyadapt.lineage import cli
from polyadapt.lineage.cli import adapters_app, lineage_app
from polyadapt.lineage.registry import PromotionGate
from polyadapt.lineage.store import LineageStore
from typer.testing import CliRunner

app = typer.Typer()
app.add_typer(lineage_app, name="lineage")
app.add_typer(adapters_app, name="adapters")
runner = CliRunner()


def _record(
    store: LineageStore, run_id: str, *, adapted: float, general: float, lr: float, policy: str | None = None
) -> None:
    manifest = {
        "root_hash": run_id[-1] * 64,
        "kind": "text",
        "records": 5,
        "record_hashes": [f"{run_id}-{i}" for i in range(4)] + ["shared"],
        "source": {"name": "train.jsonl", "bytes": 9},
        "governance": {"policy": "strict", "redacted": 1, "dropped": 0, "findings_by_type": {"email": 1}},
    }
    store.start_run(
        run_id,
        task="text-generation",
        plugin="text",
        config_hash=f"h{lr}",
        config={"training": {"learning_rate": lr}, "governance": {"policy": policy}},
        seed=7,
        environment={"polyadapt": "0.1.0", "python": "3.11", "packages": {"torch": "2.9.1"}},
        base_model="org/SmolLM2",
        datasets={"train": manifest},
    )
    store.register_adapter(
        run_id, base_model="org/SmolLM2", name="claims", path=f"/runs/{run_id}/adapter", weights_hash=run_id[-1] * 64
    )
    store.finish_run(
        run_id,
        status="completed",
        metrics=[
            {"dataset": "eval.jsonl", "metric": "perplexity", "base": 20, "adapted": adapted, "role": "domain"},
            {"dataset": "builtin", "metric": "perplexity", "base": 30, "adapted": general, "role": "general"},
        ],
    )


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables and trees as on a wide terminal: no wrapped lines to match across."""
    monkeypatch.setattr(cli.console, "width", 400)
    monkeypatch.setattr(cli.err_console, "width", 400)


@pytest.fixture
def db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    with LineageStore(url) as store:
        _record(store, "run-1", adapted=12, general=30.5, lr=1e-4)
        _record(store, "run-2", adapted=10, general=40, lr=3e-4)  # general regresses 33 %
    return url


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def test_adapters_list(db):
    result = _invoke("adapters", "list", "--json", "--db", db)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [(a["ref"], a["status"]) for a in listed] == [
        ("org/SmolLM2:claims@1", "candidate"),
        ("org/SmolLM2:claims@2", "candidate"),
    ]
    table = _invoke("adapters", "list", "--base", "SmolLM2", "--db", db)
    assert table.exit_code == 0 and "claims" in table.output and "candidate" in table.output
    assert "No adapters" in _invoke("adapters", "list", "--base", "other", "--db", db).output


def test_promote_refused_then_forced_then_rollback(db):
    ok = _invoke("adapters", "promote", "claims@1", "--db", db)
    assert ok.exit_code == 0, ok.output
    assert "active: org/SmolLM2:claims@1" in ok.output and "gate: the strict default policy" in ok.output
    refused = _invoke("adapters", "promote", "claims", "--db", db)  # newest: @2, general regresses
    assert refused.exit_code == 1
    assert "refused" in refused.output and "33.3% worse" in refused.output and "--force" in refused.output
    forced = _invoke("adapters", "promote", "claims@2", "--force", "--reason", "hotfix", "--db", db)
    assert forced.exit_code == 0, forced.output
    assert "forced" in forced.output and "version 1 retired" in forced.output
    with LineageStore(db) as store:
        assert [a.version for a in store.active_adapters()] == [2]
    rolled = _invoke("adapters", "rollback", "claims", "--db", db)
    assert rolled.exit_code == 0 and "active again: org/SmolLM2:claims@1" in rolled.output
    again = _invoke("adapters", "rollback", "claims", "--db", db)
    assert again.exit_code == 1 and "no earlier one" in again.output
    assert _invoke("adapters", "promote", "claims@1", "--db", db).output.strip().endswith("nothing changed")


def test_promote_uses_the_policy_file(db, tmp_path):
    pytest.importorskip("polyadapt.governance.policy")
    policy = tmp_path / "loose.yaml"
    policy.write_text("promotion:\n  max_general_regression: 0.5\n")
    result = _invoke("adapters", "promote", "claims@2", "--policy", str(policy), "--db", db)
    assert result.exit_code == 0, result.output
    assert "forced" not in result.output


def test_promote_follows_the_runs_own_policy(tmp_path):
    pytest.importorskip("polyadapt.governance.policy")
    policy = tmp_path / "loose.yaml"
    policy.write_text("promotion:\n  max_general_regression: 0.5\n")
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    with LineageStore(url) as store:
        _record(store, "run-1", adapted=10, general=40, lr=1e-4, policy=str(policy))
        _record(store, "run-2", adapted=10, general=40, lr=1e-4, policy=str(tmp_path / "gone.yaml"))
    result = _invoke("adapters", "promote", "claims@1", "--db", url)
    assert result.exit_code == 0, result.output
    assert f"gate: policy {policy}" in result.output and "forced" not in result.output
    gone = _invoke("adapters", "promote", "claims@2", "--db", url)
    assert gone.exit_code == 2 and "no longer exists" in gone.output
    strict = _invoke("adapters", "promote", "claims@2", "--policy", "none.yaml", "--db", url)
    assert strict.exit_code == 2 and "none.yaml" in strict.output


def test_lineage_show(db):
    with LineageStore(db) as store:
        store.promote("claims", version=1, gate=PromotionGate())
    result = _invoke("lineage", "show", "claims", "--db", db)
    assert result.exit_code == 0, result.output
    for expected in (
        "run run-1",
        "train: train.jsonl",
        "5 records",
        "policy strict",
        "org/SmolLM2:claims@1",
        "[active]",
        "domain eval.jsonl perplexity",
        "promote @1",
    ):
        assert expected in result.output, expected
    as_json = json.loads(_invoke("lineage", "show", "run-2", "--json", "--db", db).output)
    assert as_json["run"]["run_id"] == "run-2" and as_json["adapters"][0]["version"] == 2


def test_lineage_diff(db):
    result = _invoke("lineage", "diff", "run-1", "run-2", "--json", "--db", db)
    assert result.exit_code == 0, result.output
    diff = json.loads(result.output)
    assert diff["config"] == {"training.learning_rate": [1e-4, 3e-4]}
    assert diff["data"]["train"]["same"] is False
    table = _invoke("lineage", "diff", "run-1", "run-2", "--db", db)
    assert table.exit_code == 0 and "training.learning_rate" in table.output and "versions: same" in table.output
    assert "+4 / -4 records" in table.output


def test_errors_are_one_line(db, tmp_path):
    missing = _invoke("lineage", "show", "nothing", "--db", db)
    assert missing.exit_code == 1 and missing.output.startswith("error:") and "neither" in missing.output
    no_db = _invoke("adapters", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert no_db.exit_code == 1 and "no lineage database" in no_db.output
    assert not (tmp_path / "none.db").exists()
    bad = _invoke("adapters", "promote", "claims@x", "--db", db)
    assert bad.exit_code == 1 and "version after '@'" in bad.output
