"""Served traffic against a training profile: a population stability index per statistic.

PSI = Σ (served share − training share) · ln(served share / training share) over the
training profile's bins (numeric statistics) or categories (a category the training data
never had counts under ``(new)``). Shares are smoothed by half a count per bin, so an empty
bin is no infinity. The usual reading: below 0.1 stable, 0.1 to 0.25 worth watching, above
0.25 a shift (the default ``threshold``).

A statistic needs at least ``min_requests`` served values to be judged; with fewer its verdict
is ``too few``, never ``ok``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from polyadapt.monitoring.features import Features
from polyadapt.monitoring.profile import InputProfile

DEFAULT_THRESHOLD = 0.25
WATCH = 0.1
DEFAULT_MIN_REQUESTS = 30
NEW_CATEGORY = "(new)"


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """The population stability index of ``actual`` counts against ``expected`` (same bins)."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected bins but {len(actual)} actual ones")
    e_total = sum(expected) + 0.5 * len(expected)
    a_total = sum(actual) + 0.5 * len(actual)
    total = 0.0
    for e, a in zip(expected, actual):
        p, q = (e + 0.5) / e_total, (a + 0.5) / a_total
        total += (q - p) * math.log(q / p)
    return total


@dataclass(frozen=True)
class FeatureDrift:
    """One statistic compared: its bins' labels, the training and served counts, the PSI."""

    name: str
    labels: list[str]
    expected: list[int]
    actual: list[int]
    psi: float | None
    trained: str
    served: str
    verdict: str  # ok | watch | drift | too few


@dataclass(frozen=True)
class DriftReport:
    """Every statistic compared, and whether any shifted past ``threshold``."""

    requests: int
    features: list[FeatureDrift]
    threshold: float

    @property
    def drifted(self) -> list[FeatureDrift]:
        """The statistics that shifted past the threshold."""
        return [f for f in self.features if f.verdict == "drift"]

    def to_json(self) -> dict:
        """The report as ``polyadapt monitor --json`` prints it."""
        return {
            "requests": self.requests,
            "threshold": self.threshold,
            "drift": bool(self.drifted),
            "features": [f.__dict__ for f in self.features],
        }


def _verdict(value: float | None, threshold: float) -> str:
    if value is None:
        return "too few"
    return "drift" if value >= threshold else "watch" if value >= WATCH else "ok"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"


def _bin_labels(edges: list[float]) -> list[str]:
    shown = [_number(e) for e in edges]
    return [f"<{shown[0]}", *(f"{a}–{b}" for a, b in zip(shown, shown[1:])), f"≥{shown[-1]}"]


def compare(
    profile: InputProfile,
    served: Iterable[Features],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_requests: int = DEFAULT_MIN_REQUESTS,
) -> DriftReport:
    """Compare the ``served`` inputs' statistics with ``profile``, statistic by statistic."""
    rows = list(served)
    results = []
    for name, numeric in profile.numeric.items():
        values = [float(v) for row in rows if isinstance(v := row.get(name), (int, float))]
        actual = numeric.histogram(values)
        enough = len(values) >= min_requests
        value = psi(numeric.counts, actual) if enough else None
        median = _number(sorted(values)[len(values) // 2]) if values else "–"
        results.append(
            FeatureDrift(
                name,
                _bin_labels(numeric.edges),
                numeric.counts,
                actual,
                value,
                f"median {_number(numeric.median)}",
                f"median {median} (n={len(values)})",
                _verdict(value, threshold),
            )
        )
    for name, trained in profile.categorical.items():
        seen = Counter(str(v) for row in rows if isinstance(v := row.get(name), str))
        labels = [*trained, NEW_CATEGORY]
        expected = [*trained.values(), 0]
        actual = [seen.get(c, 0) for c in trained] + [sum(n for c, n in seen.items() if c not in trained)]
        enough = sum(actual) >= min_requests
        value = psi(expected, actual) if enough else None
        top_served = seen.most_common(1)[0][0] if seen else "–"
        results.append(
            FeatureDrift(
                name,
                labels,
                expected,
                actual,
                value,
                f"mostly {next(iter(trained), '–')}",
                f"mostly {top_served} (n={sum(actual)})",
                _verdict(value, threshold),
            )
        )
    return DriftReport(len(rows), results, threshold)
