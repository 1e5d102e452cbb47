"""The code plugin end to end on the tiny model: governance of a repository (secrets never
reach the run folder or the state folder), an adapter that beats the base on held-out
files, pass@k through the sandbox, and serving with ``suffix`` (fill-in-the-middle)."""

from __future__ import annotations

import json

import pytest
from code_helpers import SECRETS, code_config, make_repo, tiny_fim_model
from fastapi.testclient import TestClient
from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.errors import GovernanceError
from polyadapt.plugins import PluginManager


@pytest.fixture(scope="module")
def pm():
    import polyadapt_code
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text, "code": polyadapt_code})


@pytest.fixture(scope="module")
def fim_model(tiny_llama, tmp_path_factory):
    return tiny_fim_model(tiny_llama, tmp_path_factory.mktemp("fim") / "tiny-fim")


def leaks(needles, *roots):
    found = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [(str(path), n) for n in needles if n.encode() in data]
    return found


def test_adapt_governs_the_repository_and_beats_the_base(pm, fim_model, tmp_path, project_state, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        json.dumps(
            {
                "task_id": "t/0",
                "prompt": "def add(a, b):\n",
                "entry_point": "add",
                "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
            }
        )
        + "\n"
    )
    # the task set is named relative to the config file's folder, and polyadapt runs elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(
        code_config(
            tmp_path,
            fim_model,
            repo,
            options={"tasks": "tasks.jsonl", "tasks_licence": "CC0-1.0", "completion_tokens": 8, "timeout_s": 2},
        )
    )
    run, adapter, report = runner.adapt(pm, config)
    assert f"tasks: {tasks}" in (run.dir / "config.yaml").read_text()  # absolute: evaluate works from anywhere

    # what was kept, dropped and why
    skipped = {
        row["source"]: row["reason"] for row in map(json.loads, (run.dir / "quarantine.jsonl").read_text().splitlines())
    }
    assert skipped["src/billing/gpl_part.py"].startswith("licence: GPL-3.0-only")
    assert skipped["vendor/requests_lite.py"].startswith("vendored")
    assert skipped["src/billing/mod_00.py"].startswith("duplicate")
    assert skipped["src/billing/near_mod_00.py"].startswith("near duplicate")
    summary = json.loads((run.dir / "data_summary.json").read_text())
    examples = summary["examples"]  # the task's TrainingJob.facts
    assert examples["fim_tokens"] == "native" and examples["samples"]["fim"] > 0
    assert adapter.train_metrics["samples"] == examples["samples"]  # the facts reach the train metrics too
    assert set(summary["train_paths"]).isdisjoint(summary["heldout_paths"])
    assert "src/billing/settings.py" in summary["train_paths"] + summary["heldout_paths"]  # kept, redacted
    decisions = [json.loads(x) for x in (run.dir / "governance" / "train.jsonl").read_text().splitlines()]
    assert sum(d["findings"].get("secret", 0) for d in decisions) == 2
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    assert manifest["governance"]["licence"] == "Apache-2.0 AND MIT"

    # secrets never reach the run folder or the state folder (lineage store, audit log)
    assert leaks(list(SECRETS.values()), repo) != []  # positive control: they are in the repository
    assert leaks(list(SECRETS.values()), run.dir, project_state) == []

    # the adapter is safetensors and beats the base on the held-out files
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    rows = {(r.dataset, r.metric): r for r in report.rows}
    ppl = rows[("held-out files", "perplexity")]
    assert ppl.role == "domain" and ppl.adapted < ppl.base / 2, ppl
    for metric in ("next-line exact match", "FIM exact match"):
        row = rows[("held-out files", metric)]
        assert row.role == "domain" and not row.lower_is_better and 0 <= row.adapted <= 1
    assert rows[("general", "perplexity")].role == "general"
    assert rows[("tasks", "pass@1")].role == "domain"  # a task set given: the gate counts it
    assert "tasks" in json.loads((run.dir / "run.json").read_text()) or (run.dir / "manifests" / "tasks.json").is_file()

    # serving: /v1/completions with suffix builds a FIM prompt; the text plugin refuses suffix
    from polyadapt.serving.app import build_app_from_runs

    client = TestClient(build_app_from_runs(pm, [run.dir], batch_wait_ms=0, audit_log=tmp_path / "audit.jsonl"))
    name = f"tiny-fim:{run.dir.name}"
    body = {
        "model": name,
        "prompt": "def compute_ledger_0(value):\n",
        "suffix": "    return total + 1\n",
        "max_tokens": 6,
        "temperature": 0,
    }
    answer = client.post("/v1/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["prompt_tokens"] > 0
    servable = client.app.state.registry.bases["tiny-fim"].servable
    from polyadapt.types import GenerationRequest

    ids = servable.encode(GenerationRequest(prompt="a = 1\n", suffix="b = 2\n"))
    tok = servable.tokenizer
    assert ids[0] == tok.convert_tokens_to_ids("<fim_prefix>") and ids[-1] == tok.convert_tokens_to_ids("<fim_middle>")
    # a secret in the suffix is scanned like the prompt (the code policy redacts it before the model)
    secret = client.post("/v1/completions", json=body | {"suffix": f'password = "{SECRETS["password"]}"\n'})
    assert secret.status_code == 200
    assert SECRETS["password"] not in (tmp_path / "audit.jsonl").read_text()


def test_strict_policy_refuses_a_repository_with_secrets_before_training(pm, fim_model, tmp_path, project_state):
    repo = make_repo(tmp_path / "repo")
    config = load_config(code_config(tmp_path, fim_model, repo, policy=None, name="strict-run"))
    with pytest.raises(GovernanceError) as caught:
        runner.adapt(pm, config)
    assert "rule pii.secret" in str(caught.value)
    assert not (tmp_path / "runs" / "strict-run" / "adapter").exists()
    assert leaks(list(SECRETS.values()), tmp_path / "runs", project_state) == []


def test_text_servable_refuses_suffix(tiny_llama):
    from polyadapt.errors import PolyadaptError
    from polyadapt.types import GenerationRequest, ServeSpec
    from polyadapt_text import TASK
    from polyadapt_text.serve import TextServable

    servable = TextServable(ServeSpec(task=TASK, base_model=str(tiny_llama), base_name="tiny"))
    with pytest.raises(PolyadaptError, match="suffix"):
        servable.generate([GenerationRequest(prompt="x", suffix="y")])
