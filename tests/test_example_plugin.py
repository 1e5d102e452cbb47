"""The example third-party plugin, examples/plugins/keywords (its own distribution):
installed into a folder, discovered and listed, its own tests passing, used for an adapt
run through the CLI with its scanner applied, then removed and gone."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pip_install_into, site_environment

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugins" / "keywords"
TUTORIAL = ROOT / "docs" / "plugin_tutorial.md"


@pytest.fixture
def keywords(tmp_path) -> tuple[Path, Path]:
    """(a copy of the example's source, the folder it is pip-installed into)."""
    source = shutil.copytree(
        EXAMPLE, tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "runs", "__pycache__")
    )
    site = tmp_path / "site"
    pip_install_into(site, source)
    return source, site


def polyadapt(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = site_environment(site)
    return subprocess.run(
        [sys.executable, "-m", "polyadapt.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def listed(site: Path) -> dict[str, dict]:
    result = polyadapt(site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    return {info["name"]: info for info in json.loads(result.stdout)}


def uninstall(site: Path, distribution: str) -> None:
    """What `pip uninstall` does, for a --target folder: delete every file its RECORD lists."""
    (dist_info,) = site.glob(f"{distribution.replace('-', '_')}-*.dist-info")
    with (dist_info / "RECORD").open() as handle:
        for row in csv.reader(handle):
            (site / row[0]).unlink(missing_ok=True)
    for folder in sorted((p for p in site.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def test_installed_listed_used_through_the_cli_and_removed(keywords, tmp_path, project_state):
    source, site = keywords
    plugin = listed(site)["keywords"]
    assert plugin | {"error": None} == {
        "name": "keywords",
        "distribution": "polyadapt-keywords",
        "version": "0.1.0",
        "status": "ok",
        "error": None,
        "api": ">=2,<3",
        "tasks": ["domain-keywords"],
    }

    # its entry module imports nothing heavy: listing plugins stays free of torch
    code = (
        "import sys; from typer.testing import CliRunner; from polyadapt.cli import app;"
        "assert CliRunner().invoke(app, ['plugins']).exit_code == 0;"
        "sys.exit('torch' in sys.modules)"
    )
    light = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path)
    assert light.returncode == 0

    config = source / "demo" / "run.yaml"
    runs = tmp_path / "runs"
    result = polyadapt(site, "adapt", str(config), "--set", f"output.dir={runs}", "--set", "output.name=demo")
    assert result.returncode == 0, result.stdout + result.stderr
    run = runs / "demo"
    assert json.loads((run / "run.json").read_text())["status"] == "completed"

    # its scanner ran on the training data under the demo policy (employee_id: redact)
    decisions = [json.loads(line) for line in (run / "governance" / "train.jsonl").read_text().splitlines()]
    assert sum(d["findings"].get("employee_id", 0) for d in decisions) == 3
    assert {d["action"] for d in decisions if "employee_id" in d["findings"]} == {"redacted"}
    manifest = json.loads((run / "manifests" / "train.json").read_text())
    assert manifest["governance"]["findings_by_type"] == {"employee_id": 3}
    for folder in (run, project_state):  # no raw employee id in the run folder or the lineage store
        for path in folder.rglob("*"):
            assert not path.is_file() or b"EMP-" not in path.read_bytes(), path

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"][0]["improved"] is True
    learnt = metrics["samples"][0]["adapted"]
    assert f"(`{learnt}`)" in TUTORIAL.read_text()  # the tutorial shows what the run learns
    assert "keywords: " + learnt in result.stdout
    assert (run / "adapter" / "keywords.safetensors").is_file()

    uninstall(site, "polyadapt-keywords")
    assert "keywords" not in listed(site)
    again = polyadapt(site, "adapt", str(config), "--set", f"output.dir={runs}", "--set", "output.name=again")
    assert again.returncode == 1
    assert "no installed plugin offers task 'domain-keywords'" in again.stderr


def test_its_own_tests_pass_with_polyadapt_testing(keywords):
    source, site = keywords
    env = site_environment(site)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "4 passed" in tests.stdout
