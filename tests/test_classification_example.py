"""The second example plugin, examples/plugins/classification (its own distribution,
plugin API 2): installed into a folder, discovered and listed, its demo adapted through the
CLI on the tiny base it builds offline, its own tests passing with polyadapt.testing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pip_install_into, site_environment

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugins" / "classification"
IGNORED = shutil.ignore_patterns("build", "*.egg-info", "runs", "tiny-classifier", ".polyadapt", "__pycache__")


@pytest.fixture
def classification(tmp_path) -> tuple[Path, Path]:
    """(a copy of the example's source, the folder it is pip-installed into)."""
    source = shutil.copytree(EXAMPLE, tmp_path / "src", ignore=IGNORED)
    site = tmp_path / "site"
    pip_install_into(site, source)
    return source, site


def environment(site: Path) -> dict[str, str]:
    env = site_environment(site)
    return env


def run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=site_environment(site),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_installed_listed_and_its_demo_adapted_through_the_cli(classification, tmp_path):
    source, site = classification
    listing = run(site, "-m", "polyadapt.cli", "plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    plugin = {info["name"]: info for info in json.loads(listing.stdout)}["classification"]
    assert plugin | {"error": None} == {
        "name": "classification",
        "distribution": "polyadapt-classification",
        "version": "0.1.0",
        "status": "ok",
        "error": None,
        "api": ">=2,<3",
        "tasks": ["text-classification"],
    }

    # its entry module imports nothing heavy: listing plugins stays free of torch
    code = (
        "import sys; from typer.testing import CliRunner; from polyadapt.cli import app;"
        "assert CliRunner().invoke(app, ['plugins']).exit_code == 0;"
        "sys.exit('torch' in sys.modules)"
    )
    assert run(site, "-c", code, cwd=tmp_path).returncode == 0

    # the README's steps: build the tiny base offline, adapt the demo
    built = run(site, "-m", "polyadapt_classification.demo", "demo/tiny-classifier", cwd=source)
    assert built.returncode == 0, built.stderr
    assert (source / "demo" / "tiny-classifier" / "config.json").is_file()
    runs = tmp_path / "runs"
    adapted = run(site, "-m", "polyadapt.cli", "adapt", "demo/run.yaml", "--set", f"output.dir={runs}", cwd=source)
    assert adapted.returncode == 0, adapted.stdout[-3000:] + adapted.stderr[-3000:]
    demo = runs / "support-intents"
    assert json.loads((demo / "run.json").read_text())["status"] == "completed"
    assert json.loads((demo / "adapter" / "labels.json").read_text())["labels"] == ["billing", "claim", "policy-change"]

    rows = {row["metric"]: row for row in json.loads((demo / "metrics.json").read_text())["metrics"]}
    assert set(rows) == {"accuracy", "macro_f1"}
    assert all(row["improved"] and row["role"] == "domain" for row in rows.values())
    readme = (EXAMPLE / "README.md").read_text()
    for row in rows.values():  # the README shows what the demo run gives, to one prediction of 18
        shown = re.search(rf"│ {row['metric']}\s*│\s*([0-9.]+)\s*│\s*([0-9.]+)\s*│", readme)
        assert shown, f"the README has no {row['metric']} row"
        assert float(shown[1]) == pytest.approx(row["base"], abs=0.06), row
        assert float(shown[2]) == pytest.approx(row["adapted"], abs=0.06), row


def test_its_own_tests_pass_with_polyadapt_testing(classification):
    source, site = classification
    tests = run(site, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=source)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "6 passed" in tests.stdout
