"""`polyadapt plugin new`: the generated plugin installs with pip, is listed by polyadapt,
passes its own tests as generated (a pytest run of its own, in a subprocess), and its
example config runs with `polyadapt adapt` offline on the tiny model it builds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import pip_install_into, site_environment
from typer.testing import CliRunner

from polyadapt import __version__
from polyadapt.cli import app
from polyadapt.scaffold import PluginNames, api_range, render


def new(*args: str):
    return CliRunner().invoke(app, ["plugin", "new", *args])


def test_generated_plugin_installs_is_listed_and_passes_its_own_tests(tmp_path):
    folder = tmp_path / "polyadapt-support-chat"
    result = new("support-chat", "--task", "support-replies", "--dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "pip install -e ." in result.output and "python -m pytest" in result.output

    site = tmp_path / "site"
    pip_install_into(site, folder)
    env = site_environment(site)

    # discovered through its entry point; listing it imports no torch
    code = (
        "import json, sys; from typer.testing import CliRunner; from polyadapt.cli import app;"
        "r = CliRunner().invoke(app, ['plugins', '--json']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules];"
        "assert not heavy, heavy; print(r.output)"
    )
    listing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    plugins = {info["name"]: info for info in json.loads(listing.stdout)}
    assert plugins["support-chat"] | {"error": None} == {
        "name": "support-chat",
        "distribution": "polyadapt-support-chat",
        "version": "0.1.0",
        "status": "ok",
        "error": None,
        "api": api_range(),
        "tasks": ["support-replies"],
    }

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout

    # the example config, offline, as the README says: build the tiny model, then adapt
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-cache")}  # no network, nothing cached

    def polyadapt(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "polyadapt.cli", *args, "--set", f"output.dir={tmp_path / 'runs'}"]
        return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)

    missing = polyadapt("adapt", "example.yaml")  # before the tiny model is built
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    (line,) = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert f"base_model.id: there is no model folder at {folder / 'models' / 'tiny-llama'}" in line
    assert "python -m polyadapt_support_chat.tiny" in line

    built = subprocess.run(
        [sys.executable, "-m", "polyadapt_support_chat.tiny"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert (folder / "models" / "tiny-llama" / "config.json").is_file()
    run = polyadapt("adapt", "example.yaml", "--set", "output.name=example", "--set", "training.max_steps=6")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    record = json.loads((tmp_path / "runs" / "example" / "run.json").read_text())
    assert record["status"] == "completed" and record["base_model"] == str(folder / "models" / "tiny-llama")
    (row,) = json.loads((tmp_path / "runs" / "example" / "metrics.json").read_text())["metrics"]
    assert row["role"] == "domain"

    # a hub id with no network: one line naming the field and what to give instead
    hub = polyadapt("adapt", "example.yaml", "--set", "base_model.id=HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.returncode == 2 and "Traceback" not in hub.stderr, hub.stderr
    (line,) = [line for line in hub.stderr.splitlines() if line.startswith("error:")]
    assert "base_model.id: cannot load 'HuggingFaceTB/SmolLM2-135M-Instruct'" in line
    assert "not reachable offline" in line and "give a local model folder" in line


def test_generated_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = new("polyadapt-ledger", "--modality", "code")
    assert result.exit_code == 0, result.output
    root = tmp_path / "polyadapt-ledger"  # the default folder: the distribution's name
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "data/example.jsonl",
        "example.yaml",
        "polyadapt_ledger/__init__.py",
        "polyadapt_ledger/model.py",
        "polyadapt_ledger/task.py",
        "polyadapt_ledger/tiny.py",
        "pyproject.toml",
        "tests/test_plugin.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.polyadapt]\nledger = "polyadapt_ledger"' in pyproject
    major, minor = __version__.split(".")[:2]
    assert 'name = "polyadapt-ledger"' in pyproject and f'"polyadapt>={major}.{minor}"' in pyproject
    entry = (root / "polyadapt_ledger" / "__init__.py").read_text()
    assert f'POLYADAPT_API = "{api_range()}"' in entry and "return [LedgerTask()]" in entry
    task = (root / "polyadapt_ledger" / "task.py").read_text()
    assert "class LedgerTask(Task):" in task and 'modality = "code"' in task
    assert "options_model = Options" in task and "from polyadapt.lora import attach_lora" in task
    for light in (entry, task):  # the modules imported at start-up stay light
        assert "import torch" not in light and "import transformers" not in light
    generated = "".join(path.read_text() for path in root.rglob("*.py"))
    # no copied run steps: the core governs, writes the data files, trains and saves atomically
    for step in (
        "run.admit(",
        "atomic_directory",
        "write_json(",
        "write_text(",
        "get_peft_model",
        "count_parameters",
        "train(job",
        "def polyadapt_adapt",
        "def polyadapt_evaluate",
    ):
        assert step not in generated, step
    assert "TrainingJob(" in task and "polyadapt.testing.models import build_tiny_llama" in generated
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    example = (root / "example.yaml").read_text()
    assert "task: ledger" in example and "base_model: ./models/tiny-llama" in example
    assert "python -m polyadapt_ledger.tiny" in example


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name"], "use lower-case letters"),
        (["ok", "--task", "Not A Task"], "--task"),
        (["ok", "--modality", "speech"], "speech and image templates come with those plugins"),
    ],
)
def test_bad_names_are_refused_with_the_rule(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = new(*args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert not list(tmp_path.iterdir())


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    result = new("ledger", "--dir", str(tmp_path))
    assert result.exit_code == 1 and "already exists and is not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_names():
    names = PluginNames.make("Polyadapt_Support_Chat")
    assert (names.name, names.dist, names.module, names.task) == (
        "support-chat",
        "polyadapt-support-chat",
        "polyadapt_support_chat",
        "support-chat",
    )
    assert set(render(names)) >= {"pyproject.toml", "polyadapt_support_chat/__init__.py"}
    assert names.task_class == "SupportChatTask"
    assert api_range() == ">=2,<3"
