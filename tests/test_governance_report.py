"""Findings a person can act on: each finding's file and line, in the decisions, the run's
summary (console, manifest, ``lineage show``) and ``polyadapt governance report RUN``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyadapt.errors import GovernanceError, PolyadaptError
from polyadapt.gate import DataGate
from polyadapt.governance.engine import govern_dataset
from polyadapt.governance.located import line_at, summary_lines
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.report import read_report
from polyadapt.governance.scanners import builtin_scanners
from polyadapt.modalities.code import load_repository
from polyadapt.modalities.records import Dataset, Origins

KEY = b"k" * 32
EMAIL = "ann.lee@northwind-mail.com"
OTHER = "bob.kay@contoso-corp.net"
#: The run's repository: a.py has one address on its line 3, b.py two (lines 2 and 5).
FILES = {
    "pkg/a.py": f'"""Helpers."""\n\n# maintainer: {EMAIL}\ndef f():\n    return 1\n',
    "pkg/b.py": f"x = 1\n# {OTHER}\ny = 2\n\n# {EMAIL} again\n",
    "pkg/c.py": "def clean():\n    return 0\n",
}


def code_dataset() -> Dataset:
    records = [{"path": path, "language": "python", "text": text, "licence": "MIT"} for path, text in FILES.items()]
    return Dataset(
        source=Path("/src/repo"),
        kind="code",
        records=records,
        scanned_fields=("text",),
        lines=[None] * len(records),
        origins=Origins("path", whole_file=True, content="source"),
    )


def govern(dataset: Dataset, policy: Policy | None = None, role: str = "train"):
    policy = policy or Policy(max_finding_share=1.0)
    return govern_dataset(
        dataset,
        policy=policy,
        redactor=Redactor(policy, builtin_scanners(), KEY),
        modality=dataset.kind,
        licence="MIT",
        role=role,
    )


def test_line_within_a_file_is_counted_from_the_offset():
    text = "one\ntwo\nthree"
    assert [line_at(text, text.index(word), 1) for word in ("one", "two", "three")] == [1, 2, 3]
    assert line_at(text, 0, 10) == 10


def test_code_findings_name_the_repository_file_and_the_line_within_it():
    result = govern(code_dataset())
    decisions = {d.file: d.to_dict() for d in result.decisions}
    assert set(decisions) == set(FILES)
    assert decisions["pkg/a.py"]["at"] == [{"rule": "pii.email", "action": "redact", "line": 3}]
    assert [item["line"] for item in decisions["pkg/b.py"]["at"]] == [2, 5]
    assert decisions["pkg/c.py"]["at"] == []
    assert result.summary["findings_by_rule"] == {"pii.email": 3}
    assert result.summary["files_with_findings"] == 2
    assert [f["file"] for f in result.summary["worst_files"]] == ["pkg/b.py", "pkg/a.py"]  # the worst first
    dumped = result.decisions_jsonl() + json.dumps(result.summary)
    assert EMAIL not in dumped and OTHER not in dumped  # places, never values


def test_records_of_one_data_file_are_placed_at_their_line():
    records = [{"text": "nothing here"}, {"text": f"write to {EMAIL}\nor call"}]
    dataset = Dataset(source=Path("/data/chats.jsonl"), kind="text", records=records, scanned_fields=("text",))
    dataset.lines = [4, 9]
    result = govern(dataset)
    assert result.decisions[1].file == "/data/chats.jsonl"
    # a JSON line is one line of the file, whatever line breaks the text holds
    assert [(p.file, p.line) for p in result.decisions[1].located] == [("/data/chats.jsonl", 9)]


def test_blocked_terms_are_placed_too():
    policy = Policy(blocked_terms=["project falcon"], max_finding_share=1.0)
    dataset = code_dataset()
    dataset.records[2]["text"] = "def clean():\n    # Project Falcon only\n    return 0\n"
    result = govern(dataset, policy)
    dropped = next(d for d in result.decisions if d.file == "pkg/c.py")
    assert dropped.action == "dropped"
    assert [(p.rule, p.line, p.action) for p in dropped.located] == [("blocked_terms", 2, "drop")]


def test_a_refusal_names_the_file_and_line_of_each_finding():
    with pytest.raises(GovernanceError) as caught:
        govern(code_dataset(), Policy(pii={"email": "refuse"}, max_finding_share=1.0))
    message = str(caught.value)
    assert "pkg/a.py line 3" in message and "pkg/b.py line 2" in message
    assert EMAIL not in message


def test_the_loader_declares_where_code_records_come_from(tmp_path):
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    dataset = load_repository(tmp_path, repository_licence="MIT")
    index = [r["path"] for r in dataset.records].index("pkg/b.py")
    assert dataset.origin(index) == ("pkg/b.py", 1)
    placed = govern(dataset).decisions[index].located
    assert [p.line for p in placed] == [2, 5]


def test_the_gate_tells_the_console_the_counts_and_the_worst_files():
    said: list[str] = []
    written: dict[str, str] = {}
    policy = Policy(max_finding_share=1.0)
    gate = DataGate(
        policy=policy,
        redactor=Redactor(policy, builtin_scanners(), KEY),
        modality="code",
        default_licence="MIT",
        write_text=written.__setitem__,
        notify=said.append,
    )
    gate.admit(code_dataset(), role="train")
    assert said[0] == "governance train: 3 finding(s) in 2 file(s): pii.email 3"
    assert said[1].startswith("  worst: pkg/b.py 2 (pii.email); pkg/a.py 1 (pii.email)")
    assert "polyadapt governance report" in said[1]
    assert '"file": "pkg/a.py"' in written["governance/train.jsonl"]


def test_nothing_is_said_when_nothing_is_found():
    assert summary_lines({"findings_by_rule": {}}, "train") == []


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "governance").mkdir(parents=True)
    (run / "governance" / "train.jsonl").write_text(govern(code_dataset()).decisions_jsonl())
    return run


def test_the_report_lists_every_finding_the_worst_file_first(tmp_path):
    report = read_report(_run_folder(tmp_path))
    assert [(r.file, r.line, r.rule) for r in report.rows] == [
        ("pkg/b.py", 2, "pii.email"),
        ("pkg/b.py", 5, "pii.email"),
        ("pkg/a.py", 3, "pii.email"),
    ]
    assert report.by_rule() == {"pii.email": 3}
    assert report.by_file() == [("train", "pkg/b.py", 2), ("train", "pkg/a.py", 1)]


def test_decisions_recorded_before_places_are_still_listed(tmp_path):
    run = tmp_path / "old"
    (run / "governance").mkdir(parents=True)
    old = {"index": 3, "line": 7, "action": "redacted", "findings": {"email": 2}, "reason": "redacted email (redact)"}
    (run / "governance" / "eval.jsonl").write_text(json.dumps(old) + "\n{torn\n")
    report = read_report(run)
    assert [(r.role, r.line, r.rule, r.count) for r in report.rows] == [("eval", 7, "pii.email", 2)]
    assert report.damaged == ["governance/eval.jsonl line 2"]


def test_the_report_command_prints_files_and_lines(tmp_path):
    from polyadapt.cli import app

    run = _run_folder(tmp_path)
    result = CliRunner().invoke(app, ["governance", "report", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "pkg/b.py" in result.output and "pii.email" in result.output
    assert EMAIL not in result.output
    as_json = CliRunner().invoke(app, ["governance", "report", str(run), "--json"])
    payload = json.loads(as_json.output)
    assert payload["findings"] == 3 and payload["rows"][0] == {
        "role": "train",
        "file": "pkg/b.py",
        "line": 2,
        "rule": "pii.email",
        "action": "redact",
        "count": 1,
    }


def test_the_report_says_what_is_missing(tmp_path):
    with pytest.raises(PolyadaptError, match="no governance decisions"):
        read_report(tmp_path)
    with pytest.raises(PolyadaptError, match="no decisions for role 'eval'; the run has train"):
        read_report(_run_folder(tmp_path), role="eval")
    from polyadapt.cli import app

    result = CliRunner().invoke(app, ["governance", "report", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "no such run folder" in result.output


def test_lineage_show_names_the_worst_files():
    from polyadapt.lineage.cli import _governance_text

    summary = govern(code_dataset()).summary
    assert "worst files pkg/b.py 2, pkg/a.py 1" in _governance_text(summary)
