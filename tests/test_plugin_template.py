"""`polyadapt plugin new`: the generated plugin installs with pip, is listed by polyadapt,
and passes its own tests as generated (a pytest run of its own, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from polyadapt.cli import app
from polyadapt.scaffold import PluginNames, api_range, render
from typer.testing import CliRunner


def new(*args: str):
    return CliRunner().invoke(app, ["plugin", "new", *args])


def test_generated_plugin_installs_is_listed_and_passes_its_own_tests(tmp_path):
    folder = tmp_path / "polyadapt-support-chat"
    result = new("support-chat", "--task", "support-replies", "--dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "pip install -e ." in result.output and "python -m pytest" in result.output

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(folder)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("POLYADAPT_LOAD_PLUGINS", None)

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
        "name": "support-chat", "distribution": "polyadapt-support-chat", "version": "0.1.0",
        "status": "ok", "error": None, "api": api_range(), "tasks": ["support-replies"],
    }

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "2 passed" in tests.stdout


def test_generated_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = new("polyadapt-ledger", "--modality", "code")
    assert result.exit_code == 0, result.output
    root = tmp_path / "polyadapt-ledger"  # the default folder: the distribution's name
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "data/example.jsonl", "example.yaml", "polyadapt_ledger/__init__.py",
                     "polyadapt_ledger/training.py", "pyproject.toml", "tests/test_plugin.py"]
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.polyadapt]\nledger = "polyadapt_ledger"' in pyproject
    assert 'name = "polyadapt-ledger"' in pyproject and '"polyadapt>=0.1"' in pyproject
    entry = (root / "polyadapt_ledger" / "__init__.py").read_text()
    assert f'POLYADAPT_API = "{api_range()}"' in entry and 'modality="code"' in entry
    assert "import torch" not in entry  # the entry module stays light
    training = (root / "polyadapt_ledger" / "training.py").read_text()
    assert 'run.admit(' in training and "from polyadapt.training import TrainingJob, train" in training
    assert "safe_serialization=True" in training
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert "task: ledger" in (root / "example.yaml").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["Bad Name"], "use lower-case letters"),
    (["ok", "--task", "Not A Task"], "--task"),
    (["ok", "--modality", "speech"], "speech and image templates come with those plugins"),
])
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
        "support-chat", "polyadapt-support-chat", "polyadapt_support_chat", "support-chat")
    assert set(render(names)) >= {"pyproject.toml", "polyadapt_support_chat/__init__.py"}
    assert api_range() == ">=1,<2"
