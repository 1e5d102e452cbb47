"""The model card is filled from the run's lineage: front matter a hub renders (library,
base, licence, tags, datasets by manifest hash, model-index with base and adapted figures)
and a body a reviewer reads; ``polyadapt card RUN`` prints it; exports get it too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file
from typer.testing import CliRunner

from polyadapt.cli import app
from polyadapt.lineage.card import CARD_MARK, build_card, write_card, write_export_card

TRAIN_ROOT = "1f" * 32
GENERAL_ROOT = "2e" * 32


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head)


def make_run(root: Path, *, licence: str = "CC0-1.0", general_adapted: float = 2.02) -> Path:
    """A finished run folder as ``polyadapt adapt`` leaves it (without the weights)."""
    run = root / "support-run"
    (run / "manifests").mkdir(parents=True)
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    governance = {
        "records_in": 40,
        "kept": 36,
        "redacted": 3,
        "dropped": 1,
        "findings_by_type": {"email": 3, "phone": 1},
        "policy": "strict",
        "licence": licence,
        "role": "train",
        "modality": "text",
        "consent": "not required",
    }
    manifests = {
        "train": {"root_hash": TRAIN_ROOT, "records": 39, "source": {"name": "tickets.jsonl", "bytes": 8192}},
        "general": {"root_hash": GENERAL_ROOT, "records": 4, "source": {"name": "general.jsonl", "bytes": 300}},
    }
    for role, manifest in manifests.items():
        manifest |= {"role": role, "quarantine": {"records": 1 if role == "train" else 0, "reasons": {}}}
        manifest["governance"] = {**governance, "role": role}
        (run / "manifests" / f"{role}.json").write_text(json.dumps(manifest))
    record = {
        "run_id": "support-run",
        "task": "text-generation",
        "config_hash": "c0" * 32,
        "base_model": "org/tiny-base",
        "status": "completed",
        "environment": {"polyadapt": "9.9.9"},
        "base_model_record": {
            "id": "org/tiny-base",
            "revision": "v1",
            "weight_hashes": {"model.safetensors": "ab" * 32},
        },
        "adapter": {"trainable_parameters": 1000, "total_parameters": 50000, "train_metrics": {"steps": 30}},
        "provenance": {"name": "support", "version": 2, "weights_hash": "9a" * 32},
    }
    (run / "run.json").write_text(json.dumps(record))
    config = {
        "task": "text-generation",
        "lora": {"r": 8, "alpha": 16},
        "training": {"learning_rate": 0.005, "max_steps": 30, "seed": 7},
        "task_options": {"template": "plain"},
        "governance": {"policy": None},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = [
        {"dataset": "domain (held-out)", "metric": "perplexity", "base": 40.0, "adapted": 8.0, "role": "domain"},
        {"dataset": "general", "metric": "perplexity", "base": 2.0, "adapted": general_adapted, "role": "general"},
    ]
    (run / "metrics.json").write_text(json.dumps({"metrics": metrics, "samples": []}))
    return run


def test_front_matter_is_what_a_hub_renders(tmp_path):
    matter = front_matter(build_card(make_run(tmp_path)))
    assert matter["library_name"] == "peft" and matter["base_model"] == "org/tiny-base"

    assert matter["license"] == "cc0-1.0"
    assert {"polyadapt", "lora", "text-generation", "text"} <= set(matter["tags"])
    assert sorted(matter["datasets"]) == [
        f"polyadapt-manifest/general@sha256:{GENERAL_ROOT}",
        f"polyadapt-manifest/train@sha256:{TRAIN_ROOT}",
    ]
    (index,) = matter["model-index"]
    assert index["name"] == "support"
    results = {result["dataset"]["name"]: result for result in index["results"]}
    assert results.keys() == {"domain (held-out)", "general"}
    domain = {m["name"]: m["value"] for m in results["domain (held-out)"]["metrics"]}
    assert domain == {"perplexity (adapted)": 8.0, "perplexity (base)": 40.0}
    assert results["general"]["task"]["type"] == "text-generation"


def test_a_local_base_is_named_portably_in_the_front_matter():
    from polyadapt.lineage.card import portable_base_name

    assert portable_base_name("/root/.cache/polyadapt/models/SmolLM2-135M-Instruct.Q4_1.gguf") == (
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    assert portable_base_name("~/models/tiny-llama/") == "tiny-llama"
    assert portable_base_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_licences_the_hub_does_not_know_become_other_with_a_name(tmp_path):
    matter = front_matter(build_card(make_run(tmp_path, licence="LicenseRef-internal")))
    assert matter["license"] == "other" and matter["license_name"] == "LicenseRef-internal"


def test_body_tells_a_reviewer_data_governance_training_evaluation_and_reproduction(tmp_path):
    card = build_card(make_run(tmp_path))
    assert CARD_MARK in card and "More Information Needed" not in card
    for heading in ("Intended use", "Base model", "Data", "Governance", "Training", "Evaluation", "Limitations"):
        assert f"## {heading}" in card, heading
    assert "| train | tickets.jsonl | 39 | 8,192 bytes | CC0-1.0 | not required |" in card
    assert "| train | 40 | 36 | 3 | 1 | 1 |" in card  # counts per action, quarantine
    assert "| train | email | 3 |" in card  # findings per rule, never values
    assert "- `template`: plain" in card  # intended use: the task options
    assert "revision: `v1`" in card and "ab" * 32 in card
    assert "| domain (held-out) | perplexity | 40 | 8 | lower | +80.0% |" in card
    assert "general perplexity: held (-1.0%)" in card
    assert "polyadapt 9.9.9" in card and "c0" * 32 in card and "9a" * 32 in card
    assert "polyadapt reproduce runs/support-run" in card


def test_the_general_capability_guard_names_a_regression(tmp_path):
    card = build_card(make_run(tmp_path, general_adapted=2.5))
    assert "general perplexity: REGRESSED beyond the bound (-25.0%)" in card


def test_card_command_prints_and_writes_the_card(tmp_path):
    run = make_run(tmp_path)
    result = CliRunner().invoke(app, ["card", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output == build_card(run)
    assert not (run / "adapter" / "README.md").exists()
    result = CliRunner().invoke(app, ["card", str(run), "--write"])
    assert result.exit_code == 0 and (run / "adapter" / "README.md").read_text() == build_card(run)
    result = CliRunner().invoke(app, ["card", str(tmp_path)])
    assert result.exit_code == 1 and "not a run folder (no run.json)" in result.output
    assert "Traceback" not in result.output


def test_export_card_names_the_export_and_leaves_a_foreign_readme_alone(tmp_path):
    run = make_run(tmp_path)
    write_card(run)
    export = tmp_path / "export" / "merged.pt"
    export.parent.mkdir()
    export.write_bytes(b"x")
    written = write_export_card(run / "adapter", export, library_name="other-lib", how_to_load="Load it so.")
    assert written == export.parent / "README.md"
    card = written.read_text()
    assert front_matter(card)["library_name"] == "other-lib"
    assert "merged" in front_matter(card)["tags"] and front_matter(card)["model-index"]
    assert "## This export" in card and "`merged.pt`" in card and "Load it so." in card
    written.write_text("my own notes\n")
    assert write_export_card(run / "adapter", export, library_name="x", how_to_load="y") is None
    assert written.read_text() == "my own notes\n"


def test_card_write_upgrades_an_adapter_of_polyadapt_0_2(tmp_path):
    run = make_run(tmp_path)
    adapter = run / "adapter"
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(adapter / "adapter_model.safetensors"))
    block = {"run_id": "support-run", "dataset_root": TRAIN_ROOT, "weights_hash": "77" * 32}
    old = {"peft_type": "LORA", "base_model_name_or_path": "/home/u/.cache/polyadapt/gguf/x", "polyadapt": block}
    (adapter / "adapter_config.json").write_text(json.dumps(old))
    result = CliRunner().invoke(app, ["card", str(run), "--write"])
    assert result.exit_code == 0, result.output
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert "polyadapt" not in config and config["base_model_name_or_path"] == "org/tiny-base"
    assert json.loads((adapter / "polyadapt_provenance.json").read_text()) == block
    assert CARD_MARK in (adapter / "README.md").read_text()


@pytest.mark.parametrize("damage", ["run.json", "manifests/train.json"])
def test_a_damaged_run_file_is_named(tmp_path, damage):
    run = make_run(tmp_path)
    (run / damage).write_text("{not json")
    result = CliRunner().invoke(app, ["card", str(run)])
    assert result.exit_code == 1 and damage.split("/")[-1] in result.output and "damaged" in result.output
