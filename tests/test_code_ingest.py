"""Repository ingestion (polyadapt.modalities.code): what is kept, what is skipped and why;
licences against the policy; exact and near duplicates; the split by file; git revisions."""

from __future__ import annotations


import pytest
from code_helpers import EXPECTED_SKIPS, committed_repo, make_repo, module_text
from polyadapt.errors import DataError, GovernanceError
from polyadapt.governance.policy import Policy
from polyadapt.modalities.code import (
    combined_licence,
    deduplicate,
    language_of,
    licence_from_manifest,
    licence_from_text,
    load_repository,
    spdx_header,
    split_by_file,
)


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def test_skipped_files_have_their_reasons_and_the_rest_is_kept(repo):
    dataset = load_repository(repo, policy=Policy())
    reasons = {q.source: q.reason for q in dataset.quarantined}
    assert {path: reason.split(":")[0] for path, reason in reasons.items()} == EXPECTED_SKIPS
    assert "GPL-3.0-only (SPDX header) refused by policy 'strict'" in reasons["src/billing/gpl_part.py"]
    kept = {r["path"]: r for r in dataset.records}
    assert kept["src/billing/mod_03.py"]["language"] == "python"
    assert kept["src/billing/mod_03.py"]["licence"] == "MIT"  # from LICENSE
    assert kept["src/billing/apache_part.py"]["licence"] == "Apache-2.0"  # its own header
    assert dataset.scanned_fields == ("text",)
    assert dataset.report.to_dict()["licence_source"] == "LICENSE (recognised)"
    assert combined_licence(dataset.records) == "Apache-2.0 AND MIT"
    assert all(set(r) == {"path", "language", "text", "licence"} for r in dataset.records)


def test_refused_licence_can_refuse_the_run_and_a_refused_repository_licence_drops_everything(repo):
    with pytest.raises(GovernanceError, match="gpl_part.py.*GPL-3.0-only"):
        load_repository(repo, policy=Policy(), licence_action="refuse")
    (repo / "src/billing/apache_part.py").unlink()  # the one file with an allowed header of its own
    with pytest.raises(DataError, match="no usable source file"):
        load_repository(repo, policy=Policy(), repository_licence="GPL-3.0-only")


def test_no_licence_anywhere_drops_files_under_a_policy_that_requires_one(tmp_path):
    (tmp_path / "a.py").write_text(module_text(1))
    (tmp_path / "b.py").write_text("# SPDX-License-Identifier: MIT OR GPL-3.0-only\n" + module_text(2))
    dataset = load_repository(tmp_path, policy=Policy())
    assert [r["path"] for r in dataset.records] == ["b.py"]  # MIT OR GPL passes: MIT is allowed
    assert "declares no licence" in dataset.quarantined[0].reason or "licence" in dataset.quarantined[0].reason


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("pyproject.toml", '[project]\nname = "x"\nlicense = "Apache-2.0 OR MIT"\n', "Apache-2.0 OR MIT"),
        ("pyproject.toml", '[project]\nlicense = {text = "BSD-3-Clause"}\n', "BSD-3-Clause"),
        ("pyproject.toml", '[project]\nclassifiers = ["License :: OSI Approved :: MIT License"]\n', "MIT"),
        ("pyproject.toml", '[project]\nclassifiers = ["License :: OSI Approved :: BSD License"]\n', None),
        ("pyproject.toml", '[project]\nlicense = {file = "LICENSE"}\n', None),
        ("pyproject.toml", '[project]\nlicense = "Company internal"\n', None),
        ("pyproject.toml", "not toml = [", None),
        ("package.json", '{"name": "x", "license": "ISC"}', "ISC"),
        ("package.json", '{"license": "UNLICENSED"}', None),
        ("Cargo.toml", '[package]\nname = "x"\nlicense = "MIT/Apache-2.0"\n', None),
        ("Cargo.toml", '[package]\nname = "x"\nlicense = "MIT OR Apache-2.0"\n', "MIT OR Apache-2.0"),
    ],
)
def test_package_manifests_declare_licences(name, text, expected):
    assert licence_from_manifest(name, text) == expected


def test_the_manifest_licence_applies_when_no_licence_file_is_recognised(tmp_path):
    (tmp_path / "LICENSE").write_text("Ask the legal team.\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nlicense = "MIT"\n')
    (tmp_path / "a.py").write_text(module_text(1))
    dataset = load_repository(tmp_path, policy=Policy())
    assert {r["path"]: r["licence"] for r in dataset.records}["a.py"] == "MIT"
    assert dataset.report.to_dict()["licence_source"] == "pyproject.toml (declared licence)"
    (tmp_path / "pyproject.toml").unlink()
    with pytest.raises(DataError, match="no usable source file .*licence"):
        load_repository(tmp_path, policy=Policy())
    assert load_repository(tmp_path).report.to_dict()["licence_source"] == "LICENSE (not recognised)"


def test_exact_and_near_duplicates_are_removed_with_reasons(repo):
    dataset = deduplicate(load_repository(repo, policy=Policy()))
    reasons = {q.source: q.reason for q in dataset.quarantined}
    paths = {r["path"] for r in dataset.records}
    # copy_of_mod_00 sorts first, so it is the one kept; mod_00 is its exact duplicate
    assert reasons["src/billing/mod_00.py"] == "duplicate: same content as src/billing/copy_of_mod_00.py"
    assert reasons["src/billing/near_mod_00.py"].startswith("near duplicate:")
    assert "src/billing/copy_of_mod_00.py" in paths and "src/billing/mod_01.py" in paths
    assert len([p for p in paths if "/mod_" in p]) == 15  # distinct modules all kept


def test_split_is_by_whole_file_and_reproducible(repo):
    records = deduplicate(load_repository(repo, policy=Policy())).records
    train, held = split_by_file(records, 0.2, seed=3)
    assert {r["path"] for r in train}.isdisjoint({r["path"] for r in held})
    assert len(train) + len(held) == len(records) and held
    assert split_by_file(list(reversed(records)), 0.2, seed=3) == (train, held)


def test_helpers():
    assert language_of("a/b.TS") == "typescript" and language_of("Dockerfile") == "dockerfile"
    assert language_of("x.bin") is None
    assert spdx_header("/* SPDX-License-Identifier: Apache-2.0 OR MIT */\nint x;") == "Apache-2.0 OR MIT"
    assert licence_from_text("Apache License\nVersion 2.0, January 2004") == "Apache-2.0"
    assert licence_from_text("All rights reserved.") is None


def test_git_revision_reads_the_commit_not_the_working_tree(tmp_path):
    repo = committed_repo(tmp_path / "git", {"one.py": module_text(1)})
    (repo / "one.py").write_text("changed = True\n")
    (repo / "two.py").write_text(module_text(2))
    dataset = load_repository(repo, revision="HEAD", policy=Policy())
    assert [(r["path"], r["text"]) for r in dataset.records] == [("one.py", module_text(1))]
    assert str(dataset.source).endswith("@HEAD")
    with pytest.raises(DataError, match="cannot read revision"):
        load_repository(repo, revision="no-such-branch")
