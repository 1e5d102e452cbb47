"""Tests of polyadapt-classification with the fixtures of polyadapt.testing (pytest loads them).

Runs go through polyadapt's real pipeline on tiny random base models built offline:
``tiny_base_model("text")`` (the core's 2-layer Llama) and, for the demo,
``tiny_base_model("text-classification")`` (this plugin's own).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyadapt.errors import ConfigError, DataError
from polyadapt.testing import write_jsonl

DEMO = Path(__file__).resolve().parent.parent / "demo"

CLAIMS = [
    "The storm damaged the roof and I need to file a claim.",
    "A pipe burst and flooded the kitchen floor.",
    "Someone hit my parked car; please open a claim.",
    "Hail cracked the windscreen on the motorway.",
]
BILLS = [
    "I was charged twice for the premium this month.",
    "Please refund the extra payment to my card.",
    "Why is there a late fee on my invoice?",
    "My direct debit failed, how do I pay the bill?",
]


def labelled(texts: list[str], label: str, **extra: object) -> list[dict]:
    return [{"text": text, "label": label, **extra} for text in texts]


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """Training data (with two records to quarantine and an extra field) and held-out data."""
    train = labelled(CLAIMS * 3, "claim", channel="email") + labelled(BILLS * 3, "billing", channel="phone")
    train += [{"text": "   ", "label": "claim"}, {"text": "No label on this one."}]
    return {
        "train": write_jsonl(tmp_path / "train.jsonl", train),
        "eval": write_jsonl(tmp_path / "eval.jsonl", labelled(CLAIMS[:2], "claim") + labelled(BILLS[:2], "billing")),
        "general": write_jsonl(
            tmp_path / "general.jsonl", labelled(CLAIMS[2:], "claim") + labelled(BILLS[2:], "billing")
        ),
    }


def config(model: Path, data: dict[str, Path], **task_options: object) -> dict:
    return {
        "task": "text-classification",
        "base_model": str(model),
        "data": {
            "train": str(data["train"]),
            "eval": str(data["eval"]),
            "general_eval": str(data["general"]),
            "licence": "CC0-1.0",
        },
        "task_options": task_options,
        "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 0.01},
        "evaluation": {"num_samples": 2},
    }


def test_plugin_loads_with_its_task_and_route(plugin_manager):
    pm = plugin_manager("classification")  # the installed plugin, through its entry point
    task = pm.task("text-classification")
    assert task.plugin == "classification"
    assert [(route.method, route.path) for route in task.routes()] == [("POST", "/v1/classifications")]


def test_adapts_evaluates_and_serves(polyadapt_run, tiny_base_model, plugin_manager, data, tmp_path):
    from fastapi.testclient import TestClient

    from polyadapt.serving.app import build_app_from_runs

    model = tiny_base_model("text")
    result = polyadapt_run(config(model, data), plugins=["classification"]).assert_success()

    rows = {(row["dataset"], row["metric"]): row for row in result.metrics["metrics"]}
    assert set(rows) == {
        (dataset, metric) for dataset in ("domain (held-out)", "general") for metric in ("accuracy", "macro_f1")
    }
    for (dataset, _), row in rows.items():
        assert row["role"] == ("domain" if dataset.startswith("domain") else "general")
        assert row["lower_is_better"] is False
        assert 0.0 <= row["base"] <= 1.0 and 0.0 <= row["adapted"] <= 1.0
    sample = result.metrics["samples"][0]
    assert sample["gold"] in {"billing", "claim"} and sample["adapted"] in {"billing", "claim"}

    summary = json.loads((result.dir / "data_summary.json").read_text())
    assert summary["examples"]["train_examples"] == 24
    assert summary["examples"]["labels"] == ["billing", "claim"]  # none given: the data's, sorted
    quarantined = [json.loads(line) for line in (result.dir / "quarantine.jsonl").read_text().splitlines()]
    assert [(row["line"], row["reason"].split(":")[0]) for row in quarantined] == [
        (25, "missing text"),
        (26, "missing label"),
    ]
    adapter = result.dir / "adapter"
    assert json.loads((adapter / "labels.json").read_text())["labels"] == ["billing", "claim"]
    assert (adapter / "adapter_model.safetensors").is_file()

    pm = plugin_manager("classification")
    app = build_app_from_runs(pm, [result.dir], batch_wait_ms=0, audit_log=tmp_path / "audit.jsonl")
    with TestClient(app) as client:
        name = f"{model.name}:{result.dir.name}"
        answer = client.post("/v1/classifications", json={"model": name, "input": [CLAIMS[0], BILLS[0]]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["object"] == "list" and body["model"] == name
        assert [item["index"] for item in body["data"]] == [0, 1]
        for item in body["data"]:
            assert set(item["scores"]) == {"billing", "claim"}
            assert item["score"] == max(item["scores"].values()) == item["scores"][item["label"]]
            assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-5)

        one = client.post("/v1/classifications", json={"model": model.name, "input": "Refund my payment."})
        assert one.status_code == 200 and len(one.json()["data"]) == 1  # the base, its random head

        assert client.post("/v1/classifications", json={"model": name, "input": []}).status_code == 400
        missing = client.post("/v1/classifications", json={"model": "nope", "input": "x"})
        assert missing.status_code == 404 and name in missing.json()["error"]["message"]

        # the serving policy sees every input first: an e-mail address is redacted before the model
        redacted = client.post("/v1/classifications", json={"model": name, "input": "Mail jo@example.com my bill"})
        assert redacted.status_code == 200
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(entry["direction"], entry["rule"], entry["action"]) for entry in audit] == [
        ("prompt", "pii.email", "redact")
    ]


def test_plain_peft_reproduces_the_served_scores(polyadapt_run, tiny_base_model, plugin_manager, data, tmp_path):
    import torch
    from fastapi.testclient import TestClient
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from polyadapt.serving.app import build_app_from_runs

    model = tiny_base_model("text")
    result = polyadapt_run(
        config(model, data, labels=["claim", "billing", "other"]), plugins=["classification"]
    ).assert_success()
    adapter = result.dir / "adapter"
    labels = json.loads((adapter / "labels.json").read_text())["labels"]
    assert labels == ["claim", "billing", "other"]  # as the options give them, not sorted

    base = AutoModelForSequenceClassification.from_pretrained(model, num_labels=len(labels))
    peft_model = PeftModel.from_pretrained(base, adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    texts = [CLAIMS[1], BILLS[2]]
    with torch.no_grad():
        plain = [torch.softmax(peft_model(**tokenizer(text, return_tensors="pt")).logits[0], -1) for text in texts]

    pm = plugin_manager("classification")
    with TestClient(build_app_from_runs(pm, [result.dir], audit_log=tmp_path / "audit.jsonl")) as client:
        answer = client.post("/v1/classifications", json={"model": f"{model.name}:{result.dir.name}", "input": texts})
    served = [[item["scores"][label] for label in labels] for item in answer.json()["data"]]
    for mine, theirs in zip(plain, served):
        assert mine.tolist() == pytest.approx(theirs, abs=1e-5)


def test_a_label_outside_the_options_is_a_data_error(polyadapt_run, tiny_base_model, data):
    result = polyadapt_run(
        config(tiny_base_model("text"), data, labels=["claim", "policy-change"]), plugins=["classification"]
    )
    result.assert_failure(match="'billing' (12)", error=DataError)
    assert "not in task_options.labels (claim, policy-change)" in str(result.error)


def test_options_are_checked(polyadapt_run, tiny_base_model, data):
    model = tiny_base_model("text")
    polyadapt_run(config(model, data, labels=["claim"]), plugins=["classification"]).assert_failure(
        match="at least two labels", error=ConfigError
    )
    polyadapt_run(
        config(model, data, text_field="body", label_field="body"), plugins=["classification"]
    ).assert_failure(match="must differ", error=ConfigError)
    polyadapt_run(config(model, data, label="claim"), plugins=["classification"]).assert_failure(
        match="labels", error=ConfigError
    )  # a misspelt option names the closest one


def test_demo_learns_the_support_intents(polyadapt_run, tiny_base_model):
    model = tiny_base_model("text-classification")  # what `python -m polyadapt_classification.demo` builds
    result = polyadapt_run(
        DEMO / "run.yaml", plugins=["classification"], overrides=[f"base_model.id={model}"], defaults=False
    ).assert_success()
    rows = {row["metric"]: row for row in result.metrics["metrics"]}
    assert rows["accuracy"]["improved"] and rows["macro_f1"]["improved"]
    assert rows["accuracy"]["adapted"] >= 0.6  # 18 held-out messages; the random base is near chance
