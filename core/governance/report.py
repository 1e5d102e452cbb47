"""``polyadapt governance report RUN``: every finding of a run, with its file and line.

Reads the decisions a run wrote (``governance/<role>.jsonl``, one line per record) and
lists each finding: the data role, the file, the line, the rule and the action taken, the
worst file first, plus counts by rule and by file. Nothing here ever held a matched value:
the decisions store where and which rule, not what. Runs recorded before findings carried
their place still list their records (by line or index), with the counts they stored.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError

#: The run folder's sub-folder of decisions.
DECISIONS_DIR = "governance"


@dataclass(frozen=True)
class FindingRow:
    """One finding as the report lists it (``count`` > 1 only for an older run's totals)."""

    role: str
    file: str
    line: int | None
    rule: str
    action: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "role": self.role,
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "action": self.action,
            "count": self.count,
        }


@dataclass
class FindingsReport:
    """Every finding of a run, the worst file first, and lines of its decisions it could not read."""

    rows: list[FindingRow]
    damaged: list[str]

    def by_rule(self) -> dict[str, int]:
        """Findings per rule, the most frequent first."""
        counts: Counter[str] = Counter()
        for row in self.rows:
            counts[row.rule] += row.count
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def by_file(self) -> list[tuple[str, str, int]]:
        """``(role, file, findings)``, the file with the most findings first."""
        counts: Counter[tuple[str, str]] = Counter()
        for row in self.rows:
            counts[(row.role, row.file)] += row.count
        return [(role, file, n) for (role, file), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts and every finding."""
        return {
            "findings": sum(row.count for row in self.rows),
            "by_rule": self.by_rule(),
            "by_file": [{"role": r, "file": f, "findings": n} for r, f, n in self.by_file()],
            "rows": [row.to_dict() for row in self.rows],
            "damaged": self.damaged,
        }


def _rows_of(role: str, decision: dict[str, Any], source: str) -> list[FindingRow]:
    """The findings of one decision line (``source`` names the data when the line does not)."""
    line = decision.get("line")
    line = line if isinstance(line, int) else None
    places = decision.get("at")
    if isinstance(places, list):
        file = str(decision.get("file") or source)
        return [
            FindingRow(
                role,
                file,
                item.get("line") if isinstance(item.get("line"), int) else None,
                str(item.get("rule", "?")),
                str(item.get("action", "?")),
            )
            for item in places
            if isinstance(item, dict)
        ]
    # recorded before findings had places: the counts per type, at the record's line
    findings = decision.get("findings") or {}
    where = source if line is not None else f"{source} record #{decision.get('index', '?')}"
    action = str(decision.get("action", "?"))
    return [
        FindingRow(role, where, line, f"pii.{kind}", action, int(count))
        for kind, count in sorted(findings.items())
        if isinstance(count, int) and count > 0
    ]


def read_report(run_dir: Path | str, role: str | None = None) -> FindingsReport:
    """The findings of the run folder ``run_dir`` (of one data ``role`` when given).

    :raises PolyadaptError: ``run_dir`` is not a run folder, it has no decisions (governance
        did not run, or refused the data: the error then named the records), or no
        decisions of ``role``.
    """
    run_dir = Path(run_dir)
    folder = run_dir / DECISIONS_DIR
    if not run_dir.is_dir():
        raise PolyadaptError(f"{run_dir}: no such run folder; pass a folder under runs/ made by `polyadapt adapt`")
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise PolyadaptError(
            f"{run_dir}: no governance decisions ({DECISIONS_DIR}/*.jsonl); the run stopped before its data "
            "was governed, or governance refused the data (its error named the files and lines)"
        )
    if role is not None:
        files = [path for path in files if path.stem == role]
        if not files:
            roles = ", ".join(path.stem for path in sorted(folder.glob("*.jsonl")))
            raise PolyadaptError(f"{run_dir}: no decisions for role {role!r}; the run has {roles}")
    rows: list[FindingRow] = []
    damaged: list[str] = []
    for path in files:
        source = _source_of(run_dir, path.stem)
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                decision = json.loads(raw)
            except ValueError:
                decision = None
            if not isinstance(decision, dict):
                damaged.append(f"{DECISIONS_DIR}/{path.name} line {number}")
                continue
            rows.extend(_rows_of(path.stem, decision, source))
    worst = {(r, f): i for i, (r, f, _) in enumerate(FindingsReport(rows, []).by_file())}
    rows.sort(key=lambda row: (worst[(row.role, row.file)], row.line if row.line is not None else -1, row.rule))
    return FindingsReport(rows, damaged)


def _source_of(run_dir: Path, role: str) -> str:
    """The data source the run's manifest of ``role`` names (for decisions without a file)."""
    try:
        manifest = json.loads((run_dir / "manifests" / f"{role}.json").read_text(encoding="utf-8"))
        return str(manifest["source"]["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{role} data"


def report_tables(report: FindingsReport, limit: int | None = None) -> list[Any]:
    """Rich renderables for the console: counts by rule, by file (worst first), every finding
    (the first ``limit`` when given)."""
    from rich.markup import escape
    from rich.table import Table

    rules = Table(title="findings by rule")
    rules.add_column("rule")
    rules.add_column("findings", justify="right")
    for rule, count in report.by_rule().items():
        rules.add_row(escape(rule), str(count))
    files = Table(title="findings by file, the worst first")
    for column in ("role", "file", "findings"):
        files.add_column(column, justify="right" if column == "findings" else "left")
    for role, file, count in report.by_file():
        files.add_row(escape(role), escape(file), str(count))
    shown = report.rows if limit is None else report.rows[:limit]
    every = Table(
        title=f"every finding ({len(shown)} of {len(report.rows)})"
        if len(shown) < len(report.rows)
        else "every finding"
    )
    for column in ("role", "file", "line", "rule", "action"):
        every.add_column(column, justify="right" if column == "line" else "left")
    for row in shown:
        line = "" if row.line is None else str(row.line)
        rule = row.rule if row.count == 1 else f"{row.rule} x{row.count}"
        every.add_row(escape(row.role), escape(row.file), line, escape(rule), escape(row.action))
    return [rules, files, every]
