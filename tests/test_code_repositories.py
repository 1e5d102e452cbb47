"""A code run over several repositories (``task_options.repositories``): paths prefixed with
each repository's label, duplicates removed across repositories (the first repository's
copy kept), each repository's own licence, one ``train`` manifest, a summary entry per
repository, and errors that name the bad entry. The runs are prepared, never trained."""

from __future__ import annotations

import json

import pytest
import yaml
from code_helpers import (
    CODE_POLICY,
    code_config,
    committed_repo,
    make_repo,
    make_second_repo,
    module_text,
)
from polyadapt import runner
from polyadapt.config import load_config
from polyadapt.errors import ConfigError, DataError, GovernanceError
from polyadapt.plugins import PluginManager
from polyadapt_code.repositories import unique_labels

GPL = "SPDX-License-Identifier: GPL-3.0-only\n"


@pytest.fixture(scope="module")
def pm():
    import polyadapt_code
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text, "code": polyadapt_code})


def prepared(pm, tmp_path, repo, name="multi", **options):
    """A prepared code run (no model is loaded) reading ``repo`` and ``options``."""
    config = load_config(code_config(tmp_path, tmp_path / "unused-model", repo, name=name, options=options))
    config.data.general_eval = "none"
    return runner.prepare_run(pm, config)


def load_code_data(run):
    """The run's data as the core reads it: the task's ``load_run_data``."""
    return run.task.load_run_data(run)


def quarantine(data):
    return {row["source"]: row["reason"] for row in data.quarantine_rows()}


@pytest.fixture
def repos(tmp_path):
    # "billing-tools" sorts before "platform": path order would keep the second repository's copies
    return make_repo(tmp_path / "platform"), make_second_repo(tmp_path / "billing-tools")


def test_duplicates_across_repositories_keep_the_first_repositorys_copy(pm, tmp_path, repos):
    platform, tools = repos
    run = prepared(pm, tmp_path, platform, repositories=[str(tools)])
    data = load_code_data(run)
    reasons = quarantine(data)
    assert reasons["billing-tools/shared/ledger_copy.py"] == "duplicate: same content as platform/src/billing/mod_03.py"
    near = reasons["billing-tools/shared/near_mod_04.py"]
    assert near.startswith("near duplicate:") and near.endswith("similar to platform/src/billing/mod_04.py")
    # within one repository as before, and skip reasons say which repository a file is in
    within = reasons["platform/src/billing/mod_00.py"]
    assert within == "duplicate: same content as platform/src/billing/copy_of_mod_00.py"
    assert reasons["billing-tools/vendor/lib.py"].startswith("vendored")
    assert reasons["platform/vendor/requests_lite.py"].startswith("vendored")

    kept = [r["path"] for r in data.train + data.heldout]
    assert "platform/src/billing/mod_03.py" in kept and "platform/src/billing/mod_04.py" in kept
    assert "billing-tools/tools/helpers_20.py" in kept
    assert all(p.split("/", 1)[0] in {"platform", "billing-tools"} for p in kept)
    assert len(set(kept)) == len(kept)
    assert {r["path"] for r in data.train}.isdisjoint(r["path"] for r in data.heldout)

    # one train manifest over both repositories, governed before de-duplication
    manifest = json.loads((run.dir / "manifests" / "train.json").read_text())
    summary = data.summary()
    loaded = sum(sum(entry["licences"].values()) for entry in summary["repositories"])
    assert manifest["records"] == loaded == len(kept) + 4  # 2 duplicates in each repository
    assert manifest["source"]["name"] == "platform + billing-tools"


def test_the_summary_lists_each_repository(pm, tmp_path, repos):
    platform, tools = repos
    run = prepared(pm, tmp_path, platform, repositories=[{"path": str(tools), "licence": "Apache-2.0"}])
    summary = load_code_data(run).summary()
    first, second = summary["repositories"]
    assert first["label"] == "platform" and first["field"] == "data.train" and first["source"] == str(platform)
    assert first["repository_licence"] == "MIT" and first["licence_source"] == "LICENSE (recognised)"
    assert second["label"] == "billing-tools" and second["field"] == "task_options.repositories[0]"
    assert second["repository_licence"] == "Apache-2.0"
    assert second["licence_source"] == "declared (task_options.repositories[0].licence)"
    assert second["files_seen"] == 10 and second["files_kept"] == 6  # LICENSE, vendor/, 2 copies skipped
    assert second["skipped"] == {"duplicate": 1, "near duplicate": 1, "unknown language": 1, "vendored": 1}
    paths = summary["train_paths"] + summary["heldout_paths"]
    assert first["files_kept"] == sum(p.startswith("platform/") for p in paths)
    assert first["files_kept"] + second["files_kept"] == len(paths)
    assert summary["repository"]["licence_source"] == "LICENSE (recognised)"  # data.train's, as before
    assert first["dropped"] is None and second["dropped"] is None


def test_a_single_repository_run_is_unchanged(pm, tmp_path, repos):
    data = load_code_data(prepared(pm, tmp_path, repos[0]))
    paths = [r["path"] for r in data.train + data.heldout]
    assert "src/billing/mod_03.py" in paths and not any(p.startswith("platform/") for p in paths)
    assert quarantine(data)["src/billing/mod_00.py"] == "duplicate: same content as src/billing/copy_of_mod_00.py"
    assert "repositories" not in data.summary()


def test_a_repository_whose_licence_the_policy_refuses_is_dropped_or_refuses_the_run(pm, tmp_path):
    platform = make_repo(tmp_path / "platform")
    copyleft = make_second_repo(tmp_path / "copyleft", licence=GPL)
    data = load_code_data(prepared(pm, tmp_path, platform, repositories=[str(copyleft)]))
    paths = [r["path"] for r in data.train + data.heldout]
    assert paths and all(p.startswith("platform/") for p in paths)
    reason = quarantine(data)["copyleft/tools/helpers_20.py"]
    assert reason.startswith("licence: GPL-3.0-only (repository licence, LICENSE (recognised)) refused")
    second = data.summary()["repositories"][1]
    assert second["files_kept"] == 0 and "licence" in second["dropped"]

    # its own licence: key decides, not the LICENSE file (the positive control: it is kept)
    kept = load_code_data(
        prepared(pm, tmp_path, platform, name="mit", repositories=[{"path": str(copyleft), "licence": "MIT"}])
    )
    assert any(r["path"].startswith("copyleft/") for r in kept.train + kept.heldout)

    # refuse: the first repository passes (its one GPL file excluded), the second refuses the run
    refusing = {"licence_action": "refuse", "exclude": ["src/billing/gpl_part.py"]}
    assert load_code_data(prepared(pm, tmp_path, platform, name="first-only", **refusing)).train
    with pytest.raises(GovernanceError, match=r"task_options\.repositories\[0\]: .*copyleft.*GPL-3.0-only"):
        load_code_data(prepared(pm, tmp_path, platform, name="refuse", repositories=[str(copyleft)], **refusing))


def test_a_repository_without_any_source_file_is_an_error(pm, tmp_path, repos):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.txt").write_text("nothing to train on\n")
    run = prepared(pm, tmp_path, repos[0], repositories=[str(repos[1]), str(docs)])
    with pytest.raises(DataError, match=r"task_options\.repositories\[1\]: .*docs: no usable source file"):
        load_code_data(run)


def test_a_bad_entry_names_its_index_and_what_to_do(pm, tmp_path, repos):
    platform, tools = repos
    missing = tmp_path / "no-such-repo"
    run = prepared(pm, tmp_path, platform, repositories=[str(tools), str(missing)])
    with pytest.raises(DataError, match=r"task_options\.repositories\[1\]: .*no-such-repo is not a folder; give"):
        load_code_data(run)
    assert not (run.dir / "manifests" / "train.json").exists()  # refused before anything was read

    at_revision = {"path": str(tools), "revision": "main"}
    run = prepared(pm, tmp_path, platform, name="rev", repositories=[str(tools), at_revision])
    with pytest.raises(
        DataError,
        match=r"task_options\.repositories\[1\]: .*billing-tools is not a git repository, "
        r"so revision 'main' cannot be read; give the folder of a git repository",
    ):
        load_code_data(run)

    with pytest.raises(ConfigError, match=r"task_options\.repositories\.1\.mapping\.revison: unknown field"):
        prepared(pm, tmp_path, platform, name="typo", repositories=[str(tools), {"path": str(tools), "revison": "x"}])
    with pytest.raises(ConfigError, match=r"task_options\.repositories\.1: expected a path or a mapping"):
        prepared(pm, tmp_path, platform, name="type", repositories=[str(tools), 3])


def test_a_further_repository_at_a_git_revision(pm, tmp_path, repos):
    lib = committed_repo(tmp_path / "lib", {"one.py": module_text(50)})
    (lib / "two.py").write_text(module_text(51))  # not committed: not read
    data = load_code_data(prepared(pm, tmp_path, repos[0], repositories=[{"path": str(lib), "revision": "HEAD"}]))
    paths = {r["path"] for r in data.train + data.heldout}
    assert "lib/one.py" in paths and "lib/two.py" not in paths
    assert data.summary()["repositories"][1]["source"] == f"{lib}@HEAD"

    run = prepared(pm, tmp_path, repos[0], name="norev", repositories=[{"path": str(lib), "revision": "nope"}])
    with pytest.raises(DataError, match=r"task_options\.repositories\[0\]: .*cannot read revision"):
        load_code_data(run)


def test_labels_are_folder_names_made_unique(tmp_path):
    assert unique_labels(
        [tmp_path / "a" / "lib", tmp_path / "b" / "lib", tmp_path / "lib-2", tmp_path / "c" / "lib"]
    ) == ["lib", "lib-2", "lib-2-2", "lib-3"]


def test_same_folder_names_never_collide_in_a_run(pm, tmp_path):
    first = make_repo(tmp_path / "team-a" / "service")
    second = make_second_repo(tmp_path / "team-b" / "service")
    data = load_code_data(prepared(pm, tmp_path, first, repositories=[str(second)]))
    labels = {r["path"].split("/", 1)[0] for r in data.train + data.heldout}
    assert labels == {"service", "service-2"}
    reason = quarantine(data)["service-2/shared/ledger_copy.py"]
    assert reason == "duplicate: same content as service/src/billing/mod_03.py"


def test_relative_and_home_paths_are_absolute_in_the_run_folders_config(pm, tmp_path, monkeypatch, repos):
    tools = repos[1]
    monkeypatch.setenv("HOME", str(tmp_path))
    project = tmp_path / "project"
    project.mkdir()
    config = {
        "task": "code-generation",
        "base_model": str(tmp_path / "unused-model"),
        "data": {"train": "../platform", "general_eval": "none"},
        "governance": {"policy": str(CODE_POLICY)},
        "output": {"dir": str(tmp_path / "runs"), "name": "paths"},
        "task_options": {"repositories": ["../billing-tools", {"path": "~/billing-tools", "licence": "MIT"}]},
    }
    (project / "run.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = runner.prepare_run(pm, load_config(project / "run.yaml"))
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["task_options"]["repositories"] == [str(tools), {"path": str(tools), "licence": "MIT"}]
    data = load_code_data(run)
    labels = [entry["label"] for entry in data.summary()["repositories"]]
    assert labels == ["platform", "billing-tools", "billing-tools-2"]


def test_a_heldout_repository_loses_its_copies_of_training_files(pm, tmp_path):
    """data.eval as a second repository: a held-out file that copies a training file
    (exactly or nearly) is quarantined, naming the training file, and never scored."""
    train = make_repo(tmp_path / "platform", secrets=False)
    held = make_second_repo(tmp_path / "billing-tools")
    run = prepared(pm, tmp_path, train)
    run.config.data.eval = held
    data = load_code_data(run)
    reasons = quarantine(data)
    assert reasons["shared/ledger_copy.py"] == "duplicate: same content as data.train/src/billing/mod_03.py"
    assert reasons["shared/near_mod_04.py"].endswith("similar to data.train/src/billing/mod_04.py")
    heldout = sorted(r["path"] for r in data.heldout)
    assert heldout == [f"tools/helpers_{i}.py" for i in range(20, 26)]
    assert "src/billing/mod_03.py" in {r["path"] for r in data.train}
