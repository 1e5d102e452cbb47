"""A gate per task: which evaluation metrics must improve, and which must not fall.

The policy's gate (:func:`polyadapt.lineage.registry.check_promotion`) asks that no
``domain`` metric be worse and one be better. A task knows more: an adapter that lowers a
code model's perplexity but leaves its pass@k where it was has not learnt to write the
repository's functions. A :class:`MetricGate` names metrics by their name (``pass@1``),
by ``dataset/metric`` (``tasks/pass@1``) or with ``*`` wildcards (``pass@*``):

- ``improve``: each must beat the base by at least its margin, an absolute difference in
  the metric's own units (``0.05``: five points of exact match; ``0``: any gain);
- ``no_regress``: each must not be worse than the base; one that did not move at all is
  a warning (the gate passes, and says that other metrics carried it).

The run config's ``gate:`` block sets it (:class:`polyadapt.config.GateConfig`); without one
the task's own :attr:`polyadapt.task.Task.gate` applies. A task's default is lenient where a
config is strict: a metric it names that the run did not measure (no task set, say) or
reported only (role ``other``) is a warning, where a config's is a failure.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.lineage.registry import GateCheck


@dataclass(frozen=True)
class MetricGate:
    """Metrics that must improve (name -> least absolute gain) and metrics that must not fall.

    ``default`` marks a task's own gate: metrics it names may be missing from a run or
    reported only (role ``other``) without failing it.
    """

    improve: Mapping[str, float] = field(default_factory=dict)
    no_regress: tuple[str, ...] = ()
    default: bool = False

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> MetricGate:
        """The gate of a run config's ``gate:`` block (validated, or as stored in a run record)."""
        improve = {str(name): float(delta) for name, delta in (block.get("improve") or {}).items()}
        return cls(improve=improve, no_regress=tuple(str(name) for name in block.get("no_regress") or ()))

    def describe(self) -> str:
        """One line: ``pass@1 must improve by >= 0.05; FIM exact match must not fall``."""
        parts = [
            f"{name} must improve by >= {delta:g}" if delta else f"{name} must improve"
            for name, delta in self.improve.items()
        ]
        parts += [f"{name} must not fall" for name in self.no_regress]
        return "; ".join(parts) or "no metric named"


def matches(pattern: str, dataset: str, metric: str) -> bool:
    """Whether ``pattern`` names the row ``dataset``/``metric`` (``*`` and ``?`` are wildcards)."""
    if "/" in pattern:
        return fnmatch.fnmatchcase(f"{dataset}/{metric}", pattern)
    return fnmatch.fnmatchcase(metric, pattern)


def absolute_gain(base: float, adapted: float, lower_is_better: bool) -> float:
    """How much better ``adapted`` is than ``base`` in the metric's units (negative: worse)."""
    return (base - adapted) if lower_is_better else (adapted - base)


@dataclass
class MetricGateResult:
    """The checks of a :class:`MetricGate`, problems that are no single row, and warnings."""

    checks: list[GateCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_metric_gate(rows: list[dict[str, Any]], gate: MetricGate) -> MetricGateResult:
    """Hold normalised metric rows (see ``normalise_metric_rows``) to ``gate``."""
    from polyadapt.lineage.registry import GateCheck

    result = MetricGateResult()
    named = [(pattern, "improve", delta) for pattern, delta in gate.improve.items()]
    named += [(pattern, "no_regress", 0.0) for pattern in gate.no_regress]
    measured = ", ".join(f"{row['dataset']}/{row['metric']}" for row in rows) or "none"
    for pattern, rule, delta in named:
        found = [row for row in rows if matches(pattern, row["dataset"], row["metric"])]
        if gate.default:
            found = [row for row in found if row["role"] != "other"]
        if not found:
            note = f"the gate names {pattern!r} ({rule}) but the run has no such metric (it has: {measured})"
            if gate.default:
                result.warnings.append(f"{note}; the task's gate skips it")
            else:
                result.problems.append(f"{note}; fix the run config's `gate.{rule}` or evaluate that metric")
            continue
        for row in found:
            gain = absolute_gain(row["base"], row["adapted"], row["lower_is_better"])
            if math.isnan(gain):
                passed = False
            elif rule == "improve":
                passed = gain >= delta and gain > 0
            else:
                passed = gain >= 0
            check = GateCheck.of_row(row, role=row["role"], improvement=gain, bound=delta, passed=passed, rule=rule)
            result.checks.append(check)
            if rule == "no_regress" and gain == 0:
                result.warnings.append(
                    f"{row['dataset']} {row['metric']} did not move (base {row['base']:.6g}, adapted "
                    f"{row['adapted']:.6g}): the gate only asks that it not fall, so other metrics carry "
                    "this promotion; evaluate on more examples, or require it to improve (`gate.improve`)"
                )
    return result


def gate_of_run(
    config_gate: Mapping[str, Any] | None, task_gate: MetricGate | None, task: str
) -> tuple[MetricGate | None, str]:
    """The gate a run is held to and where it comes from: the run config's ``gate:`` block
    (``config_gate``, None when the config has none), else the task's own (``task_gate``)."""
    if config_gate is not None:
        return MetricGate.from_config(config_gate), "the run config's gate"
    if task_gate is not None:
        return task_gate, f"task {task}'s default gate"
    return None, "no task gate"


def verdict_lines(passed: bool, failures: list[str], warnings: list[str]) -> list[str]:
    """What a run prints after evaluating: whether promotion would pass, why not, and warnings."""
    lines = ["promotion gate: passes" if passed else "promotion gate: would refuse this adapter"]
    lines += [f"  fails: {failure}" for failure in failures]
    lines += [f"  warning: {warning}" for warning in warnings]
    return lines
