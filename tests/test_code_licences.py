"""Licences and copyright holders of a repository's files without ScanCode: the light
fallback (labelled so), the per-file policy (allowed, denied, needs review), ScanCode's JSON
read into findings, and what the manifest and ``lineage show`` record. ScanCode itself is
tested in test_code_licences_scancode.py."""

from __future__ import annotations

import json

import pytest
from code_helpers import MIT, code_config, module_text

from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.errors import ConfigError, DataError, GovernanceError
from polyadapt.governance.policy import Policy, parse_policy
from polyadapt.lineage.licensing import licensing_lines
from polyadapt.lineage.manifest import build_manifest
from polyadapt.modalities.code import load_repository
from polyadapt.modalities.code_licences import (
    FallbackEngine,
    copyright_holders,
    find_scancode,
    finding_from_scancode,
    licence_engine,
    licence_from_wording,
    licence_verdict,
)
from polyadapt.plugins import PluginManager

#: boltons' LICENSE (BSD-3-Clause): its third clause says "The names of the contributors",
#: not the "Neither the name of" the old detector looked for, and it was read as BSD-2-Clause.
BOLTONS_LICENSE = """Copyright (c) 2013, Mahmoud Hashemi

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are
met:

    * Redistributions of source code must retain the above copyright
      notice, this list of conditions and the following disclaimer.

    * Redistributions in binary form must reproduce the above
      copyright notice, this list of conditions and the following
      disclaimer in the documentation and/or other materials provided
      with the distribution.

    * The names of the contributors may not be used to endorse or
      promote products derived from this software without specific
      prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
"AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR
A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
OWNER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
(INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""
BSD_2 = BOLTONS_LICENSE.split("    * The names")[0] + "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS\n"
NEITHER_THE_NAME = BOLTONS_LICENSE.replace(
    "The names of the contributors may not be used",
    "Neither the name of the copyright holder nor the names of its contributors may be used",
)


def boltons_like(root):
    """A repository under boltons' licence wording, one file with its own holder."""
    (root / "pkg").mkdir(parents=True)
    (root / "LICENSE").write_text(BOLTONS_LICENSE)
    (root / "pkg" / "a.py").write_text("def a():\n    return 1\n")
    (root / "pkg" / "b.py").write_text("# Copyright (c) 2021 Jane Doe <jane@example.org>\ndef b():\n    return 2\n")
    return root


def test_the_fallback_reads_each_bsd_3_wording_as_bsd_3_and_bsd_2_as_bsd_2():
    assert licence_from_wording(BOLTONS_LICENSE) == "BSD-3-Clause"
    assert licence_from_wording(NEITHER_THE_NAME) == "BSD-3-Clause"
    assert licence_from_wording(BSD_2) == "BSD-2-Clause"


def test_copyright_holders_are_the_names_after_the_years_without_addresses():
    assert copyright_holders(BOLTONS_LICENSE) == ("Mahmoud Hashemi",)
    text = "# Copyright 2019-2024 Jane Doe. All rights reserved.\n# Copyright (c) Acme Ltd.\nx = 1\n"
    assert copyright_holders(text) == ("Jane Doe", "Acme Ltd")
    found = FallbackEngine().scan({"b.py": b"# Copyright (c) 2021 Jane Doe <jane@example.org>\n"})
    assert found["b.py"].holders == ("Jane Doe",)


def test_a_repository_records_its_licence_holders_and_the_fallback_engine(tmp_path):
    dataset = load_repository(boltons_like(tmp_path / "repo"))
    report = dataset.report
    assert report.repository_licence == "BSD-3-Clause" and report.licence_source == "LICENSE (recognised)"
    assert report.licence_engine == "fallback" and report.licence_rule is None and report.licence_score is None
    assert set(report.holders) == {"Mahmoud Hashemi", "Jane Doe"}
    assert report.file_licences["pkg/b.py"]["holders"] == ["Jane Doe"]
    assert {r["path"]: r["licence"] for r in dataset.records} == {
        "pkg/a.py": "BSD-3-Clause",
        "pkg/b.py": "BSD-3-Clause",
    }
    manifest = build_manifest(dataset, role="train")
    assert manifest["licensing"]["engine"] == "fallback"
    assert manifest["licensing"]["licence"] == "BSD-3-Clause"
    line = licensing_lines(manifest["licensing"])[0]
    assert "licence BSD-3-Clause (LICENSE (recognised), engine fallback)" in line
    assert "copyright Mahmoud Hashemi, Jane Doe" in line or "copyright Jane Doe, Mahmoud Hashemi" in line


def test_the_fallback_does_not_read_a_source_files_words_as_its_licence(tmp_path):
    (tmp_path / "LICENSE").write_text(BOLTONS_LICENSE)
    (tmp_path / "gpl_compat.py").write_text('NOTE = "unlike the GNU General Public License version 3"\n')
    dataset = load_repository(tmp_path)
    assert dataset.records[0]["licence"] == "BSD-3-Clause"


def strict_with(**licences) -> Policy:
    return Policy(licences={"allowed": ["MIT", "BSD-3-Clause", "Apache-2.0"], **licences})


def test_policy_allows_denies_and_holds_files_for_review_per_file(tmp_path):
    repo = boltons_like(tmp_path / "repo")
    (repo / "pkg" / "mpl.py").write_text("# SPDX-License-Identifier: MPL-2.0\nx = 1\n")
    (repo / "pkg" / "mit.py").write_text("# SPDX-License-Identifier: MIT\ny = 2\n")
    (repo / "pkg" / "either.py").write_text("# SPDX-License-Identifier: MIT OR Apache-2.0\nz = 3\n")
    policy = strict_with(denied=["MIT"], review=["MPL-2.0"])
    dataset = load_repository(repo, policy=policy)
    kept = {r["path"] for r in dataset.records}
    reasons = {q.source: q.reason for q in dataset.quarantined}
    assert kept == {"pkg/a.py", "pkg/b.py", "pkg/either.py"}  # MIT denied, but Apache-2.0 is a way out
    assert reasons["pkg/mit.py"].startswith("licence: MIT (SPDX header) refused by policy")
    assert reasons["pkg/mit.py"].endswith("MIT is denied by policy 'strict' (licences.denied: mit)")
    assert reasons["pkg/mpl.py"].startswith("licence: MPL-2.0 (SPDX header) held for review")
    (repo / "pkg" / "mit.py").unlink()
    with pytest.raises(GovernanceError, match=r"mpl\.py: MPL-2\.0 needs review under policy 'strict'"):
        load_repository(repo, policy=policy, licence_action="refuse")


def test_licence_verdicts():
    policy = strict_with(denied=["GPL-3.0-only"], review=["LGPL-3.0-only"])
    assert licence_verdict(policy, "MIT OR GPL-3.0-only", "f")[0] == "allow"
    assert licence_verdict(policy, "MIT AND GPL-3.0-only", "f")[0] == "deny"
    assert licence_verdict(policy, "LGPL-3.0-only", "f")[0] == "review"
    assert licence_verdict(policy, "LicenseRef-scancode-unknown-license-reference", "f")[0] == "review"
    assert licence_verdict(policy, "CC-BY-NC-4.0", "f") == (
        "deny",
        "rule licence: CC-BY-NC-4.0 is not allowed by policy 'strict' (allowed: MIT, BSD-3-Clause, Apache-2.0); "
        "use data under an allowed licence, or change the policy's licences.allowed if its terms permit this use",
    )
    assert licence_verdict(policy, "BSD-3-Clause", "f") == ("allow", None)


def test_a_policy_naming_an_unknown_id_to_deny_or_review_is_an_error():
    with pytest.raises(ConfigError, match=r"review.*unknown SPDX licence id.*'Not-A-Licence'"):
        parse_policy("name: p\nlicences:\n  review: [Not-A-Licence]\n", "p.yaml")


#: One file of ScanCode 32.5's JSON output (``files[]``), as it reports boltons' LICENSE.
SCANCODE_ENTRY = {
    "path": "files/LICENSE",
    "type": "file",
    "detected_license_expression": "bsd-new",
    "detected_license_expression_spdx": "BSD-3-Clause",
    "license_detections": [
        {
            "license_expression": "bsd-new",
            "license_expression_spdx": "BSD-3-Clause",
            "matches": [
                {"score": 100.0, "rule_identifier": "bsd-new_75.RULE", "license_expression_spdx": "BSD-3-Clause"},
                {"score": 90.0, "rule_identifier": "bsd-new_169.RULE", "license_expression_spdx": "BSD-3-Clause"},
            ],
        }
    ],
    "copyrights": [{"copyright": "Copyright (c) 2013, Mahmoud Hashemi", "start_line": 1, "end_line": 1}],
    "holders": [{"holder": "Mahmoud Hashemi", "start_line": 1, "end_line": 1}],
    "authors": [{"author": "Jane Doe <jane@example.org>", "start_line": 3, "end_line": 3}],
    "scan_errors": [],
}


def test_a_scancode_entry_becomes_a_finding_with_rules_lowest_score_and_holders():
    finding = finding_from_scancode(SCANCODE_ENTRY, "scancode 32.5.0")
    assert finding.licence == "BSD-3-Clause"
    assert finding.rule == "bsd-new_169.RULE, bsd-new_75.RULE" and finding.score == 90.0
    assert finding.holders == ("Mahmoud Hashemi",) and finding.authors == ("Jane Doe",)
    assert finding.engine == "scancode 32.5.0" and finding.error is None
    pointer = finding_from_scancode(
        {**SCANCODE_ENTRY, "detected_license_expression_spdx": "LicenseRef-scancode-unknown-license-reference"}, "s"
    )
    assert pointer.reference_only and not finding.reference_only and pointer.own_licence is None
    both = finding_from_scancode(
        {**SCANCODE_ENTRY, "detected_license_expression_spdx": "LicenseRef-scancode-unknown-license-reference AND MIT"},
        "s",
    )
    assert both.own_licence == "MIT" and finding.own_licence == "BSD-3-Clause"


def test_where_scancode_is_looked_for(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYADAPT_SCANCODE", "off")
    assert find_scancode() is None
    assert isinstance(licence_engine("auto"), FallbackEngine)
    with pytest.raises(DataError, match=r"task_options.licence_engine: scancode is set but ScanCode is not installed"):
        licence_engine("scancode")
    monkeypatch.setenv("POLYADAPT_SCANCODE", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"POLYADAPT_SCANCODE=.*missing: not an executable file"):
        find_scancode()


@pytest.fixture(scope="module")
def pm():
    import polyadapt_code
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text, "code": polyadapt_code})


def test_a_code_run_records_each_repositorys_licence_and_holders_and_says_the_fallback(pm, tmp_path):
    repo = boltons_like(tmp_path / "repo")
    second = tmp_path / "tools"
    (second / "src").mkdir(parents=True)
    (second / "LICENSE").write_text(MIT)  # Copyright (c) 2024 Example Corp
    for index in range(4):  # enough files for the held-out split
        (repo / "pkg" / f"m{index}.py").write_text(module_text(index))
        (second / "src" / f"t{index}.py").write_text(module_text(index + 20))
    config = load_config(
        code_config(tmp_path, tmp_path / "unused-model", repo, options={"repositories": [str(second)]})
    )
    config.data.general_eval = "none"
    said: list[str] = []
    run = runner.prepare_run(pm, config, notify=said.append)
    run.task.load_run_data(run)
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    first, other = manifest["licensing"]["repositories"]
    assert (first["label"], first["licence"], first["engine"]) == ("repo", "BSD-3-Clause", "fallback")
    assert first["holders"] == ["Mahmoud Hashemi", "Jane Doe"]
    assert (other["label"], other["licence"], other["holders"]) == ("tools", "MIT", ["Example Corp"])
    assert manifest["governance"]["licence"] == "BSD-3-Clause AND MIT"
    lines = licensing_lines(manifest["licensing"])
    assert lines[1].startswith("tools: licence MIT (LICENSE (recognised), engine fallback); copyright Example Corp")
    assert any("light fallback" in line and "not ScanCode" in line for line in said)


def test_lineage_show_prints_the_licensing_of_each_repository():
    from polyadapt.lineage.cli import _show_lineage, console

    licensing = {
        "repositories": [
            {
                "label": "boltons",
                "licence": "BSD-3-Clause",
                "source": "LICENSE (recognised)",
                "engine": "scancode 32.5.0",
                "rule": "bsd-new_75.RULE",
                "score": 100.0,
                "holders": ["Mahmoud Hashemi"],
                "authors": [],
                "files": {"boltons/x.py": {"licence": "BSD-3-Clause"}},
            }
        ]
    }
    chain = {
        "ref": "r1",
        "data": [
            {
                "role": "train",
                "source": "boltons",
                "records": 3,
                "root_hash": "ab" * 32,
                "quarantine": {"records": 0},
                "governance": {"policy": "strict"},
                "licensing": licensing,
            }
        ],
        "run": None,
        "adapters": [],
        "evaluation": [],
    }
    with console.capture() as captured:
        _show_lineage(chain)
    text = " ".join(captured.get().replace("│", " ").split())  # lines wrap inside the tree
    assert (
        "boltons: licence BSD-3-Clause (LICENSE (recognised), engine scancode 32.5.0, rule bsd-new_75.RULE, "
        "score 100); 1 files with a licence of their own; copyright Mahmoud Hashemi"
    ) in text
