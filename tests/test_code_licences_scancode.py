"""ScanCode as the code loader's licence engine: on a repository it never saw, the SPDX
licence of the LICENSE file (boltons' BSD-3-Clause wording, which the old detector read as
BSD-2-Clause), the rule and score, the copyright holders, a file's own licence notice, the
cache by file hash, and a code run's manifest. Skipped where ScanCode is not installed
(``scripts/setup.sh`` installs it into ``.venv-scancode``, as CI does)."""

from __future__ import annotations

import json

import pytest
from code_helpers import code_config, module_text
from test_code_licences import BOLTONS_LICENSE
from typer.testing import CliRunner

from polyadapt import runner
from polyadapt.cli import app
from polyadapt.config import load_config
from polyadapt.modalities.code import load_repository
from polyadapt.modalities.code_licences import SCANCODE_ENV, ScanCodeEngine, find_scancode
from polyadapt.plugins import PluginManager

APACHE_NOTICE = """# Copyright 2020 Example Systems Inc.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""


@pytest.fixture
def scancode(monkeypatch):
    """The ``scancode`` executable, as a run finds it (the suite switches it off by default)."""
    monkeypatch.delenv(SCANCODE_ENV, raising=False)
    executable = find_scancode()
    if executable is None:
        pytest.skip("ScanCode is not installed: scripts/setup.sh installs it into .venv-scancode")
    return executable


def unseen_repository(root):
    (root / "lib").mkdir(parents=True)
    (root / "LICENSE").write_text(BOLTONS_LICENSE)
    (root / "lib" / "plain.py").write_text(module_text(1))
    (root / "lib" / "vendored_notice.py").write_text(APACHE_NOTICE + module_text(2))
    (root / "lib" / "by_jane.py").write_text("# Copyright (c) 2021 Jane Doe\n" + module_text(3))
    for index in range(4, 10):  # one file naming a person is under the policy's max_finding_share
        (root / "lib" / f"more_{index}.py").write_text(module_text(index))
    return root


@pytest.fixture(scope="module")
def pm():
    import polyadapt_code
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text, "code": polyadapt_code})


@pytest.mark.slow
def test_scancode_finds_the_licence_holders_and_file_notices_and_caches_by_hash(scancode, pm, tmp_path):
    repo = unseen_repository(tmp_path / "unseen")
    engine = ScanCodeEngine(scancode)  # the state folder's cache, which the run below shares
    dataset = load_repository(repo, licence_engine=engine)
    report = dataset.report
    assert engine.scanned == 10  # LICENSE and the nine source files
    assert report.repository_licence == "BSD-3-Clause"
    assert report.licence_engine.startswith("scancode ") and "bsd-new" in report.licence_rule
    assert report.licence_score == 100.0
    assert {"Mahmoud Hashemi", "Jane Doe", "Example Systems Inc."} <= set(report.holders)
    licences = {r["path"]: r["licence"] for r in dataset.records}
    assert licences["lib/vendored_notice.py"] == "Apache-2.0"  # its own notice, not the repository's
    assert licences["lib/plain.py"] == "BSD-3-Clause"
    own = report.file_licences["lib/vendored_notice.py"]
    assert own["engine"] == report.licence_engine and own["rule"] and own["score"] >= 90

    again = load_repository(repo, licence_engine=engine)
    assert engine.scanned == 0  # every file's hash was in the cache
    assert again.report.to_dict() == report.to_dict()

    config = load_config(code_config(tmp_path, tmp_path / "unused-model", repo, options={"licence_engine": "scancode"}))
    config.data.general_eval = "none"
    run = runner.prepare_run(pm, config)
    run.task.load_run_data(run)
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    licensing = manifest["licensing"]
    assert licensing["licence"] == "BSD-3-Clause" and licensing["engine"] == report.licence_engine
    assert "Mahmoud Hashemi" in licensing["holders"] and licensing["score"] == 100.0

    # the lineage store keeps it, and `lineage show RUN` prints it
    from polyadapt.lineage.store import LineageStore

    store = LineageStore.open()
    store.start_run(
        run.id,
        task="code-generation",
        plugin="code",
        config_hash="h",
        config={},
        seed=7,
        environment={},
        base_model="tiny",
        datasets={"train": manifest},
    )
    store.close()
    shown = CliRunner().invoke(app, ["lineage", "show", run.id])
    text = " ".join(shown.output.replace("│", " ").split())
    assert shown.exit_code == 0, shown.output
    assert "licence BSD-3-Clause (LICENSE (recognised), engine scancode " in text
    assert "copyright Mahmoud Hashemi" in text
