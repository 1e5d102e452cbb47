"""The adapter registry's vocabulary: versions, references and the promotion gate.

Every adapter is a numbered version per (base model, name) with a status: ``candidate``
(registered, not served), ``active`` (the one ``serve`` uses) or ``retired``. A reference
names a version the way users type it: ``name``, ``name@3``, ``base:name@3`` (``base`` is the
base model's id or its short name). Promotion is gated by the run's evaluation: no
``domain`` metric may be worse than the base and at least one must beat it by the policy's
margin (a run reports several domain figures, such as loss and exact match, and a small
model may move only some of them), and no ``general`` metric may regress by more than the
policy's threshold (both relative to the base, 0.05 = 5 %).

The storage lives in :mod:`polyadapt.lineage.store`; this module is pure logic.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from polyadapt.errors import PolyadaptError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable
    from typing import TypeAlias

    from polyadapt.lineage.metricgate import MetricGate
    from polyadapt.types import EvalReport, MetricRow

    #: Evaluation metrics as the store takes them: an ``EvalReport``, its ``to_dict()``
    #: (``{"metrics": [...]}``) or the rows themselves (``MetricRow``s or dicts).
    MetricRows: TypeAlias = EvalReport | dict[str, Any] | Iterable[MetricRow | dict[str, Any]]

STATUSES = ("candidate", "active", "retired")
EVENTS = ("promote", "force-promote", "rollback", "retire")
#: What an adapter name may look like: ``:`` and ``@`` are taken by references.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class PromotionRefused(PolyadaptError):
    """The run's evaluation does not pass the promotion gate; ``checks`` says which numbers."""

    def __init__(self, message: str, checks: list[GateCheck] | None = None):
        super().__init__(message)
        self.checks = list(checks or [])


class PromotionGateSettings(Protocol):
    """What the gate reads from a policy (``polyadapt.governance.policy.Policy.promotion``)."""

    min_domain_improvement: float
    max_general_regression: float


@dataclass(frozen=True)
class PromotionGate:
    """The gate's two numbers, relative to the base (0.05 = 5 %); the strict policy's defaults."""

    min_domain_improvement: float = 0.0
    max_general_regression: float = 0.05


@dataclass(frozen=True)
class AdapterVersion:
    """One registered adapter version."""

    id: int
    base_model: str
    name: str
    version: int
    run_id: str
    path: str
    weights_hash: str
    status: str
    created: str

    @property
    def ref(self) -> str:
        """The full reference, ``base:name@version``."""
        return f"{self.base_model}:{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with ``ref``)."""
        return asdict(self) | {"ref": self.ref}


@dataclass(frozen=True)
class AdapterRef:
    """A parsed reference: ``base`` and ``version`` are None where the user left them out."""

    name: str
    base: str | None = None
    version: int | None = None


def parse_ref(ref: str) -> AdapterRef:
    """Parse ``name``, ``name@3``, ``base:name`` or ``base:name@3``."""
    text = ref.strip()
    version: int | None = None
    if "@" in text:
        text, _, raw_version = text.rpartition("@")
        if not raw_version.isdigit() or int(raw_version) < 1:
            raise PolyadaptError(f"{ref!r}: the version after '@' must be a number from 1, as in NAME@3")
        version = int(raw_version)
    base: str | None = None
    if ":" in text:
        base, _, text = text.rpartition(":")
        base = base or None
    if not text:
        raise PolyadaptError(f"{ref!r}: no adapter name; write NAME, NAME@3 or BASE:NAME@3")
    return AdapterRef(name=text, base=base, version=version)


def check_name(name: str) -> None:
    """Raise if ``name`` cannot be an adapter name (it must survive ``base:name@3``)."""
    if not NAME_PATTERN.match(name):
        raise PolyadaptError(
            f"adapter name {name!r} is not allowed: use letters, digits, '.', '-' and '_' "
            "(at most 128, starting with a letter or digit); ':' and '@' are taken by references"
        )


def short_base_name(base: str) -> str:
    """The short name of a base model id or path, as ``BaseModelConfig.display_name`` makes it:
    the last path part, without ``.gguf``, with ``:`` as ``-``."""
    short = re.split(r"[/\\]", base.rstrip("/\\"))[-1] or base
    return short.removesuffix(".gguf").replace(":", "-")


def base_matches(stored: str, wanted: str) -> bool:
    """Whether the registry's base ``stored`` is what the user calls ``wanted``.

    Either may be the full id or path and the other its short name (what ``serve`` shows
    and what the runner files adapters under).
    """
    if stored == wanted:
        return True
    return wanted in (short_base_name(stored), stored.rstrip("/\\")) or short_base_name(wanted) == stored


# -- the gate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateCheck:
    """One gated metric: its numbers, the relative change and whether it passes."""

    role: str
    dataset: str
    metric: str
    base: float
    adapted: float
    lower_is_better: bool
    #: Relative improvement over the base: positive is better, 0.05 = 5 % better.
    improvement: float
    #: The bound it is held to (domain: at least this improvement; general: at most this regression).
    bound: float
    passed: bool
    #: ``improve`` or ``no_regress`` for a check of the task's gate
    #: (:mod:`~polyadapt.lineage.metricgate`), whose ``improvement`` and ``bound`` are absolute
    #: differences in the metric's units; empty for the policy's relative checks.
    rule: str = ""

    @classmethod
    def of_row(
        cls, row: dict[str, Any], *, role: str, improvement: float, bound: float, passed: bool, rule: str = ""
    ) -> GateCheck:
        """The check of one metric row (``dataset``, ``metric``, ``base``, ``adapted``,
        ``lower_is_better``) with its verdict."""
        return cls(
            role=role,
            dataset=row["dataset"],
            metric=row["metric"],
            base=row["base"],
            adapted=row["adapted"],
            lower_is_better=row["lower_is_better"],
            improvement=improvement,
            bound=bound,
            passed=passed,
            rule=rule,
        )

    def describe(self) -> str:
        """One line such as ``domain eval.jsonl perplexity: base 12.3, adapted 11.9 (3.3% better, needs >= 5.0%)``."""
        verdict = "ok" if self.passed else "FAILS"
        if self.rule:
            gain = "not a number" if math.isnan(self.improvement) else f"{self.improvement:+.6g}"
            need = "must not fall" if self.rule == "no_regress" else f"must improve by >= {self.bound:g}"
            return (
                f"task gate {self.dataset} {self.metric}: base {self.base:.6g}, adapted {self.adapted:.6g} "
                f"(change {gain}, {need}) {verdict}"
            )
        if math.isnan(self.improvement):
            change = "not a number"
        elif self.improvement >= 0:
            change = f"{_pct(self.improvement)} better"
        else:
            change = f"{_pct(-self.improvement)} worse"
        if self.role == "domain":
            need = "must not be worse"
        else:
            need = f"allowed <= {_pct(self.bound)} worse"
        verdict = "ok" if self.passed else "FAILS"
        return (
            f"{self.role} {self.dataset} {self.metric}: base {self.base:.6g}, adapted "
            f"{self.adapted:.6g} ({change}, {need}) {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class GateResult:
    """The gate's verdict: every gated check plus problems that are not a single metric."""

    checks: list[GateCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: What passed but deserves a look (a gated metric that did not move); never a failure.
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(check.passed for check in self.checks)

    def failures(self) -> list[str]:
        """What failed, one line each."""
        return self.problems + [check.describe() for check in self.checks if not check.passed]


def _pct(value: float) -> str:
    return "inf%" if math.isinf(value) else f"{value * 100:.1f}%"


def relative_improvement(base: float, adapted: float, lower_is_better: bool) -> float:
    """How much better ``adapted`` is than ``base``, relative to ``|base|`` (negative: worse).

    With a base of 0 any improvement is infinite and any regression infinitely bad.
    """
    gain = (base - adapted) if lower_is_better else (adapted - base)
    if math.isnan(gain):
        return math.nan
    if base == 0:
        return 0.0 if gain == 0 else math.copysign(math.inf, gain)
    return gain / abs(base)


def _field(row: Any, name: str, default: Any = None) -> Any:
    return row.get(name, default) if isinstance(row, dict) else getattr(row, name, default)


def normalise_metric_rows(metrics: MetricRows | None) -> list[dict[str, Any]]:
    """Metric rows as plain dicts from an ``EvalReport``, its ``to_dict()`` or a list of rows.

    Only the numbers are kept (dataset, metric, base, adapted, lower_is_better, role);
    example generations (``samples``) never reach the lineage store.
    """
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        rows = metrics.get("metrics", [])
    elif hasattr(metrics, "rows"):
        rows = cast("EvalReport", metrics).rows  # of the three forms, only a report has rows
    else:
        rows = metrics
    out = []
    for row in rows:
        try:
            out.append(
                {
                    "dataset": str(_field(row, "dataset", "")),
                    "metric": str(_field(row, "metric", "")),
                    "base": float(_field(row, "base")),
                    "adapted": float(_field(row, "adapted")),
                    "lower_is_better": bool(_field(row, "lower_is_better", True)),
                    "role": str(_field(row, "role", "other") or "other"),
                }
            )
        except (TypeError, ValueError):
            raise PolyadaptError(
                f"metric row {row!r} lacks a numeric base or adapted value; rows need dataset, "
                "metric, base, adapted, lower_is_better and role"
            ) from None
    return out


def check_promotion(rows: MetricRows, gate: PromotionGateSettings, metric_gate: MetricGate | None = None) -> GateResult:
    """Hold a run's metric rows to the gate; see the module docstring for the rules.

    A domain metric passes when it is not worse than the base, and at least one must improve
    by ``min_domain_improvement`` (strictly, when that is 0: the adapter must beat the base
    somewhere). A general metric passes when it regresses by at most
    ``max_general_regression``. No domain metric at all fails. ``metric_gate`` (the run
    config's ``gate:`` or the task's default) adds its checks and warnings on top.
    """
    min_gain = float(gate.min_domain_improvement)
    max_loss = float(gate.max_general_regression)
    result = GateResult()
    normalised = normalise_metric_rows(rows)
    if metric_gate is not None:
        from polyadapt.lineage.metricgate import check_metric_gate

        task_checks = check_metric_gate(normalised, metric_gate)
        result.problems += task_checks.problems
        result.warnings += task_checks.warnings
    for row in normalised:
        role = row["role"]
        if role not in ("domain", "general"):
            continue
        gain = relative_improvement(row["base"], row["adapted"], row["lower_is_better"])
        if math.isnan(gain):
            passed = False
        elif role == "domain":
            passed = gain >= 0
        else:
            passed = -gain <= max_loss
        bound = min_gain if role == "domain" else max_loss
        result.checks.append(GateCheck.of_row(row, role=role, improvement=gain, bound=bound, passed=passed))
    domain = [check for check in result.checks if check.role == "domain"]
    if not domain:
        result.problems.append(
            "the run has no domain evaluation (no metric row with role 'domain'); evaluate it "
            "with `polyadapt evaluate RUN_DIR` on held-out domain data first"
        )
    elif not any(_beats(check.improvement, min_gain) for check in domain):
        best = max(domain, key=lambda c: -math.inf if math.isnan(c.improvement) else c.improvement)
        need = "better than the base" if min_gain <= 0 else f"at least {_pct(min_gain)} better"
        change = (
            "not a number"
            if math.isnan(best.improvement)
            else (f"{_pct(best.improvement)} better" if best.improvement >= 0 else f"{_pct(-best.improvement)} worse")
        )
        result.problems.append(
            f"no domain metric is {need}; the best, {best.dataset} {best.metric}, has base "
            f"{best.base:.6g}, adapted {best.adapted:.6g} ({change})"
        )
    if metric_gate is not None:
        result.checks += task_checks.checks
    return result


def _beats(gain: float, min_gain: float) -> bool:
    """Whether an improvement of ``gain`` clears the margin (strictly above 0 when it is 0)."""
    return not math.isnan(gain) and gain >= min_gain and (gain > 0 or min_gain < 0)
