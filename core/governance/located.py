"""Where findings are: the file and line of each one, and the counts a person acts on.

A record's findings are placed in the file the record came from
(:meth:`polyadapt.modalities.records.Dataset.origin`): the data file and the record's line
for records read from one file, the record's own file (and the line within it, counted
from the finding's character offset) for records that are whole files. A place never
holds the matched value, only the rule, the action taken, the file and the line.
:func:`findings_summary` turns the places of a dataset into counts by rule and by file,
the worst file first, for the run's console, its manifest and ``lineage show``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: How many files the summary names, the worst first (the report lists them all).
WORST_FILES = 10


@dataclass(frozen=True)
class Located:
    """One finding's place: the rule that fired, what was done, the file and its line there."""

    rule: str
    action: str
    file: str
    line: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the file is the record's, so it is written once per record)."""
        return {"rule": self.rule, "action": self.action, "line": self.line}


def line_at(text: str, offset: int, first_line: int) -> int:
    """The line of character ``offset`` of ``text`` when ``text`` starts on ``first_line``."""
    return first_line + text.count("\n", 0, max(0, offset))


def place(
    located: Iterable[tuple[str, int, str]], text: str, file: str, line: int | None, whole_file: bool
) -> list[Located]:
    """The places of one text's findings (``(rule, offset, action)`` from the redactor).

    With ``whole_file`` the text is ``file`` read whole, so each finding's line is counted
    from its offset; otherwise every finding is at the record's ``line``.
    """
    return [
        Located(rule, action, file, line_at(text, offset, line) if whole_file and line is not None else line)
        for rule, offset, action in located
    ]


def findings_summary(places: Iterable[Located], worst: int = WORST_FILES) -> dict[str, Any]:
    """Counts of ``places``: ``findings_by_rule`` and ``worst_files`` (the ``worst`` files with
    the most findings, each with its count per rule; ties in file order), ``files_with_findings``."""
    by_rule: Counter[str] = Counter()
    by_file: dict[str, Counter[str]] = {}
    for item in places:
        by_rule[item.rule] += 1
        by_file.setdefault(item.file, Counter())[item.rule] += 1
    ranked = sorted(by_file.items(), key=lambda pair: (-sum(pair[1].values()), pair[0]))
    return {
        "findings_by_rule": dict(sorted(by_rule.items())),
        "files_with_findings": len(by_file),
        "worst_files": [
            {"file": file, "findings": sum(rules.values()), "rules": dict(sorted(rules.items()))}
            for file, rules in ranked[:worst]
        ],
    }


def summary_lines(summary: dict[str, Any], role: str, shown: int = 3) -> list[str]:
    """One or two console lines for a governed dataset's findings (none when it has none)."""
    by_rule = summary.get("findings_by_rule") or {}
    if not by_rule:
        return []
    total = sum(by_rule.values())
    files = summary.get("files_with_findings", 0)
    rules = ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0])))
    lines = [f"governance {role}: {total} finding(s) in {files} file(s): {rules}"]
    worst = summary.get("worst_files") or []
    if worst:
        named = "; ".join(f"{item['file']} {item['findings']} ({', '.join(item['rules'])})" for item in worst[:shown])
        more = f" and {files - shown} more" if files > shown else ""
        lines.append(f"  worst: {named}{more}; each with its line: polyadapt governance report RUN_FOLDER")
    return lines
