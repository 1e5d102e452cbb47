"""Govern a whole dataset before training: licence, consent, then every record's text.

:func:`govern_dataset` is what the runner calls on each dataset (train, eval, replay, ...)
after loading and before tokenisation. It either returns a :class:`GovernedDataset` (the
records with PII rewritten and dropped records removed, one :class:`Decision` per record
and a summary for the lineage manifest), or raises :class:`GovernanceError` with a message
that names the dataset file, the rule and the first records that break it, and says what
to do. Neither the decisions, the summary nor the errors ever contain a matched value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polyadapt.errors import GovernanceError
from polyadapt.governance.located import Located, findings_summary, place
from polyadapt.governance.policy import Policy, spdx_licensing
from polyadapt.governance.redact import REWRITING, Placeholders, Redactor, TextOutcome
from polyadapt.governance.source_files import ScanContext, record_context
from polyadapt.modalities.records import Dataset

#: How many records an error message lists per rule.
MAX_LISTED = 10

_CONSENT_WORDS = {"yes", "y", "true", "1", "granted", "given"}


@dataclass(frozen=True)
class Decision:
    """What happened to one record: ``kept``, ``redacted`` or ``dropped``, and why.

    ``index`` is the record's position in the dataset given to :func:`govern_dataset`,
    ``line`` its line in the source file (None when unknown); ``findings`` counts PII by
    type; ``file`` is the file the record came from (the data file, or the record's own
    file: a repository's source file, an image) and ``located`` where in it each finding
    and blocked term is. There is no field for content: a decision never carries a raw value.
    """

    index: int
    line: int | None
    action: str
    findings: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    file: str | None = None
    located: tuple[Located, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "line": self.line,
            "action": self.action,
            "findings": dict(sorted(self.findings.items())),
            "reason": self.reason,
            "file": self.file,
            "at": [item.to_dict() for item in self.located],
        }


@dataclass
class GovernedDataset:
    """The governed records (a new :class:`Dataset`), one decision per input record, a summary."""

    dataset: Dataset
    decisions: list[Decision]
    summary: dict[str, Any]

    def decisions_jsonl(self) -> str:
        """The decisions as JSON lines (``governance/<role>.jsonl`` in a run folder)."""
        return "".join(json.dumps(d.to_dict(), sort_keys=True) + "\n" for d in self.decisions)


# ---------------------------------------------------------------------------------------
# Licence
# ---------------------------------------------------------------------------------------


def _canonical_keys(licensing: Any, ids: list[str]) -> set[str]:
    keys = set()
    for item in ids:
        parsed = licensing.parse(item)
        keys.add(parsed.render("{symbol.key}").lower())
    return keys


def _unknown(licensing: Any, parsed: Any) -> list[str]:
    return [key for key in licensing.unknown_license_keys(parsed) if not key.startswith("LicenseRef-")]


def _satisfied(node: Any, allowed: set[str]) -> bool:
    """``A OR B`` needs either side allowed, ``A AND B`` both; a symbol must be in ``allowed``."""
    from license_expression import AND, OR

    if isinstance(node, OR):
        return any(_satisfied(arg, allowed) for arg in node.args)
    if isinstance(node, AND):
        return all(_satisfied(arg, allowed) for arg in node.args)
    return node.render("{symbol.key}").lower() in allowed


def check_licence(policy: Policy, licence: str | None, source: str) -> str | None:
    """Check the data licence ``licence`` (an SPDX expression) of ``source`` against ``policy``.

    Returns the normalised expression (None when no licence is declared and the policy does
    not require one). Raises :class:`GovernanceError` when the licence is missing but
    required, is not a valid expression, names unknown ids, or is not allowed: ``A OR B``
    passes when either is allowed, ``A AND B`` only when both are.
    """
    if licence is None or not str(licence).strip():
        if policy.licences.require_declared:
            raise GovernanceError(
                f"{source}: rule licence: the data declares no licence and policy "
                f"{policy.name!r} requires one; set `data.licence` in the run config to the "
                "data's SPDX id (e.g. CC-BY-4.0), or use a policy with "
                "licences.require_declared: false"
            )
        return None
    licensing = spdx_licensing()
    try:
        parsed = licensing.parse(str(licence))
    except Exception as exc:  # noqa: BLE001 - license_expression raises several kinds
        raise GovernanceError(
            f"{source}: rule licence: {licence!r} is not a valid SPDX licence expression ({exc}); "
            "fix `data.licence` in the run config (e.g. 'MIT' or 'CC-BY-4.0 OR MIT')"
        ) from None
    unknown = _unknown(licensing, parsed)
    if unknown:
        raise GovernanceError(
            f"{source}: rule licence: unknown SPDX licence id(s) {', '.join(map(repr, unknown))} in "
            f"{licence!r}; fix `data.licence` in the run config (ids: https://spdx.org/licenses/)"
        )
    normalised = parsed.render("{symbol.key}")
    allowed = _canonical_keys(licensing, policy.licences.allowed)
    if not _satisfied(parsed, allowed):
        raise GovernanceError(
            f"{source}: rule licence: {normalised} is not allowed by policy {policy.name!r} "
            f"(allowed: {', '.join(policy.licences.allowed)}); use data under an allowed licence, "
            "or change the policy's licences.allowed if its terms permit this use"
        )
    return normalised


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------


def has_consent(value: object) -> bool:
    """True for a consent field that grants consent: ``true``, ``1``, ``"yes"``, ``"granted"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in _CONSENT_WORDS
    return False


def _parse_path(path: str) -> list[tuple[str, bool]]:
    parts = []
    for part in path.split("."):
        each = part.endswith("[]")
        parts.append((part[:-2] if each else part, each))
    return parts


def _rewrite(value: Any, parts: list[tuple[str, bool]], fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string at ``parts`` (a copy; input untouched)."""
    if not parts:
        return fn(value) if isinstance(value, str) else value
    (name, each), rest = parts[0], parts[1:]
    if not isinstance(value, dict) or name not in value:
        return value
    child = value[name]
    if each:
        if not isinstance(child, list):
            return value
        new_child: Any = [_rewrite(item, rest, fn) for item in child]
    else:
        new_child = _rewrite(child, rest, fn)
    return {**value, name: new_child}


def _label(index: int, line: int | None) -> str:
    return f"line {line}" if line is not None else f"record #{index}"


def _where(located: list[Located], rule: str, label: str, own_files: bool) -> str:
    """The record ``label`` (``line 12`` of the data file), or for records with files of their
    own the file with the line where ``rule`` first fired (``pkg/util.py line 34``)."""
    first = next((item for item in located if item.rule == rule), None) if own_files else None
    if first is None or first.line is None:
        return label
    return f"{first.file} line {first.line}"


def _listed(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_LISTED])
    more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
    return f"{shown}{more}"


def govern_dataset(
    dataset: Dataset,
    *,
    policy: Policy,
    redactor: Redactor,
    modality: str,
    licence: str | None,
    role: str = "train",
    consent_default: bool = False,
) -> GovernedDataset:
    """Apply ``policy`` to ``dataset`` (the ``role`` data of a ``modality`` run).

    In order: the licence (:func:`check_licence`), consent when the policy requires it
    for ``modality`` (``consent_default`` when the policy does not name it: the task's
    own :attr:`polyadapt.task.Task.consent_required`), then every string at the dataset's ``scanned_fields`` through
    ``redactor``: records that are source files (``dataset.origins.content == "source"``) with the source
    rules of :mod:`~polyadapt.governance.source_files`, their tests and fixtures as the policy's
    ``source.test_files`` says (a skipped one is dropped). Raises :class:`GovernanceError` for a
    refused licence, missing consent, a finding or blocked term whose action is ``refuse``, more
    records with findings than ``max_finding_share`` allows, or no record left. Deterministic for the same input.
    """
    source = str(dataset.source)
    normalised_licence = check_licence(policy, licence, source)
    lines = dataset.lines if len(dataset.lines) == len(dataset.records) else [None] * len(dataset.records)

    consent_required = policy.consent.required.get(modality, consent_default)
    if consent_required:
        consent_field = policy.consent.field
        lacking = [
            _label(i, lines[i])
            for i, record in enumerate(dataset.records)
            if not (isinstance(record, dict) and has_consent(record.get(consent_field)))
        ]
        if lacking:
            raise GovernanceError(
                f"{source}: rule consent: policy {policy.name!r} requires consent for {modality} "
                f"data and {len(lacking)} of {len(dataset.records)} records lack a true "
                f"{consent_field!r} field: {_listed(lacking)}; add consent to those records, "
                "remove them, or change the policy's consent.required"
            )

    paths = [_parse_path(p) for p in dataset.scanned_fields]
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    for record in dataset.records:
        for parts in paths:
            _rewrite(record, parts, collect)
    with redactor.primed(texts):
        governed = _govern_records(dataset, policy, redactor, paths, lines, normalised_licence, role, modality)
    # the model card shows it; every record was checked above when it is required
    governed.summary["consent"] = f"every record ({policy.consent.field})" if consent_required else "not required"
    return governed


def _govern_records(
    dataset: Dataset,
    policy: Policy,
    redactor: Redactor,
    paths: list[list[tuple[str, bool]]],
    lines: list[int | None],
    normalised_licence: str | None,
    role: str,
    modality: str,
) -> GovernedDataset:
    """Every record of ``dataset`` through ``redactor``: the decisions, the summary, the records kept."""
    source = str(dataset.source)
    what = f"the {role} data of policy {policy.name!r}"
    records: list[dict[str, Any]] = []
    kept_lines: list[int | None] = []
    decisions: list[Decision] = []
    refusals: dict[str, list[str]] = {}
    with_findings: list[str] = []
    totals: dict[str, int] = {}
    whole_file = dataset.origins is not None and dataset.origins.whole_file
    places: list[Located] = []
    for index, record in enumerate(dataset.records):
        outcomes: list[TextOutcome] = []
        placeholders = Placeholders()  # one numbering per record: a value keeps its number across fields
        file, first_line = dataset.origin(index)
        located: list[Located] = []
        context = record_context(dataset, index)
        if context is not None and context.test_file and policy.source.test_files == "skip":
            reason = "test file left out (policy source.test_files: skip)"
            decisions.append(Decision(index, lines[index], "dropped", {}, reason, file))
            continue

        def apply(
            text: str,
            outcomes: list[TextOutcome] = outcomes,
            placeholders: Placeholders = placeholders,
            located: list[Located] = located,
            file: str = file,
            first_line: int | None = first_line,
            context: ScanContext | None = context,
        ) -> str:
            outcome = redactor.apply(text, placeholders, context)
            outcomes.append(outcome)
            located.extend(place(outcome.located, text, file, first_line, whole_file))
            return outcome.text

        new_record = record
        for parts in paths:
            new_record = _rewrite(new_record, parts, apply)
        findings: dict[str, int] = {}
        actions: dict[str, str] = {}
        refused: list[str] = []
        dropped_by: list[str] = []
        for outcome in outcomes:
            for kind, count in outcome.findings.items():
                findings[kind] = findings.get(kind, 0) + count
                actions[kind] = outcome.actions[kind]
            for rule in outcome.refused:
                if rule not in refused:
                    refused.append(rule)
            if outcome.dropped:
                rules = [f"pii.{k}" for k, a in outcome.actions.items() if a == "drop"]
                if outcome.blocked_terms and policy.blocked_terms_action == "drop":
                    rules.append("blocked_terms")
                dropped_by.extend(r for r in rules if r not in dropped_by)
        label = file if dataset.origins is not None else _label(index, lines[index])
        places.extend(located)
        where = (file, tuple(located))
        for kind, count in findings.items():
            totals[kind] = totals.get(kind, 0) + count
        if any(action != "allow" for action in actions.values()):
            with_findings.append(label)
        for rule in refused:
            refusals.setdefault(rule, []).append(_where(located, rule, label, dataset.origins is not None))
        findings = dict(sorted(findings.items()))
        if dropped_by:
            reason = f"dropped by rule {', '.join(sorted(dropped_by))} (policy action drop)"
            decisions.append(Decision(index, lines[index], "dropped", findings, reason, *where))
            continue
        rewritten = sorted(k for k, a in actions.items() if a in REWRITING or a == "refuse")
        if rewritten:
            reason = f"redacted {', '.join(f'{k} ({actions[k]})' for k in rewritten)}"
            decisions.append(Decision(index, lines[index], "redacted", findings, reason, *where))
        elif findings:
            reason = f"findings allowed by policy: {', '.join(findings)}"
            decisions.append(Decision(index, lines[index], "kept", findings, reason, *where))
        else:
            decisions.append(Decision(index, lines[index], "kept", findings, "no findings", *where))
        records.append(new_record)
        kept_lines.append(lines[index])

    if refusals:
        detail = "\n".join(
            f"  rule {rule}: {len(labels)} record(s): {_listed(labels)}" for rule, labels in sorted(refusals.items())
        )
        raise GovernanceError(
            f"{source}: {what} refuses this data:\n{detail}\n"
            "Fix the data (remove or clean those records) or change the policy "
            "(its pii / blocked_terms_action settings; see configs/policies/)."
        )
    records_in = len(dataset.records)
    share = len(with_findings) / records_in if records_in else 0.0
    if share > policy.max_finding_share:
        raise GovernanceError(
            f"{source}: {what} refuses this data: rule max_finding_share "
            f"{policy.max_finding_share:g}: {share:.0%} of records have findings "
            f"({len(with_findings)} of {records_in}; findings by type: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(totals.items(), key=lambda kv: -kv[1]))}): "
            f"{_listed(with_findings)}. Clean the data "
            "before training, or raise max_finding_share in the policy if this much PII is expected."
        )
    if records_in and not records:
        raise GovernanceError(
            f"{source}: {what} dropped every record ({records_in}); see the decisions, fix the "
            "data or change the policy's drop actions"
        )
    counts = {action: sum(d.action == action for d in decisions) for action in ("kept", "redacted", "dropped")}
    summary = {
        "records_in": records_in,
        "kept": counts["kept"],
        "redacted": counts["redacted"],
        "dropped": counts["dropped"],
        "findings_by_type": dict(sorted(totals.items())),
        "finding_share": round(share, 6),
        "policy": policy.name,
        "licence": normalised_licence,
        "role": role,
        "modality": modality,
        "detectors": sorted(scanner.name for scanner in redactor.scanners),
        **findings_summary(places),
    }
    governed = dataclasses.replace(dataset, records=records, lines=kept_lines if dataset.lines else [])
    governed.quarantined = list(dataset.quarantined)
    return GovernedDataset(dataset=governed, decisions=decisions, summary=summary)
