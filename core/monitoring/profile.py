"""A training set's input profile: what drift is measured against.

Built from the inputs a task says its training records hold
(:meth:`polyadapt.task.Task.input_sample`), written to ``input_profile.json`` in the run
folder next to ``data_summary.json``. For each numeric statistic it keeps the training data's
decile edges and how many training inputs fall in each bin (so served values are binned
the same way later); for each category statistic, the counts per category; and the training
vocabulary for ``oov_share``.

The vocabulary keeps only words found in at least :data:`MIN_RECORDS_PER_WORD` training
inputs (after governance's redaction), at most :data:`MAX_VOCABULARY` of them: no word that
only one record holds, such as a name, is written down.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyadapt.errors import PolyadaptError
from polyadapt.fileio import atomic_write_text, read_json_file
from polyadapt.monitoring.features import Features, input_features, words_of

PROFILE_FILE = "input_profile.json"
FORMAT = "polyadapt-input-profile/1"
MIN_RECORDS_PER_WORD = 3
MAX_VOCABULARY = 20_000
#: Bins within the training range per numeric statistic (deciles; fewer when values repeat).
BINS = 10


@dataclass(frozen=True)
class InputSample:
    """One input as a task sees it: its text (None: none) and numbers of the task's own."""

    text: str | None = None
    numbers: Mapping[str, float] = field(default_factory=dict)


#: Record fields that hold what a request asks, in the order they are looked for.
INPUT_FIELDS = ("prompt", "instruction", "question", "input", "text", "caption")


def default_input_sample(record: dict[str, Any]) -> InputSample | None:
    """A training record's input as a request would send it: a chat's turns but the
    assistant's, else the first of :data:`INPUT_FIELDS` that holds text; None when none does."""
    messages = record.get("messages")
    if isinstance(messages, list):
        turns = [str(m.get("content") or "") for m in messages if isinstance(m, dict) and m.get("role") != "assistant"]
        return InputSample("\n".join(turns)) if turns else None
    for name in INPUT_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and value:
            return InputSample(value)
    return None


@dataclass
class NumericProfile:
    """A numeric statistic on the training data: bin edges and the count in each bin.

    Bin ``i`` holds values in ``[edges[i-1], edges[i])``; bin 0 everything below ``edges[0]``
    and the last bin everything from ``edges[-1]`` up, so ``len(counts) == len(edges) + 1``."""

    edges: list[float]
    counts: list[int]
    median: float

    def bin_of(self, value: float) -> int:
        """The bin ``value`` falls in."""
        return bisect.bisect_right(self.edges, value)

    def histogram(self, values: Iterable[float]) -> list[int]:
        """How many of ``values`` fall in each bin."""
        counts = [0] * (len(self.edges) + 1)
        for value in values:
            counts[self.bin_of(value)] += 1
        return counts


@dataclass
class InputProfile:
    """The statistics of a training set's inputs (see the module docstring)."""

    samples: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, dict[str, int]]
    vocabulary: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        """The profile as ``input_profile.json`` holds it."""
        return {
            "format": FORMAT,
            "samples": self.samples,
            "numeric": {
                name: {"edges": p.edges, "counts": p.counts, "median": p.median} for name, p in self.numeric.items()
            },
            "categorical": self.categorical,
            "vocabulary": sorted(self.vocabulary),
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> InputProfile:
        """The profile in ``data`` (read from ``path``, named in the error when it is not one)."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            numeric = {
                name: NumericProfile([float(e) for e in p["edges"]], [int(c) for c in p["counts"]], float(p["median"]))
                for name, p in data["numeric"].items()
            }
            for name, p in numeric.items():
                if len(p.counts) != len(p.edges) + 1:
                    raise ValueError(f"{name}: {len(p.counts)} counts for {len(p.edges)} edges")
            categorical = {name: {str(k): int(v) for k, v in c.items()} for name, c in data["categorical"].items()}
            return cls(int(data["samples"]), numeric, categorical, frozenset(map(str, data["vocabulary"])))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PolyadaptError(
                f"{path}: not an input profile polyadapt can read ({exc}); re-run the training to write it again"
            ) from None


def _decile_edges(values: list[float]) -> list[float]:
    """The training minimum, the deciles above it, and a hair above the maximum: values
    outside the training range fall in bins of their own (empty in training), so a shift
    past it shows even when the training values are all alike."""
    ordered = sorted(values)
    n, low, high = len(ordered), ordered[0], ordered[-1]
    deciles = {ordered[min(n - 1, (n * i) // BINS)] for i in range(1, BINS)}
    return [low, *sorted(e for e in deciles if e > low), math.nextafter(high, math.inf)]


def _vocabulary(texts: Iterable[str]) -> frozenset[str]:
    seen_in: Counter[str] = Counter()
    for text in texts:
        seen_in.update(set(words_of(text)))
    kept = [(count, word) for word, count in seen_in.items() if count >= MIN_RECORDS_PER_WORD]
    kept.sort(key=lambda cw: (-cw[0], cw[1]))
    return frozenset(word for _, word in kept[:MAX_VOCABULARY])


def build_profile(samples: Iterable[InputSample]) -> InputProfile:
    """The profile of ``samples`` (a training set's inputs)."""
    samples = list(samples)
    vocabulary = _vocabulary(s.text for s in samples if s.text)
    rows: list[Features] = [input_features(s.text, s.numbers, vocabulary) for s in samples]
    numbers: dict[str, list[float]] = {}
    categories: dict[str, Counter[str]] = {}
    for row in rows:
        for name, value in row.items():
            if isinstance(value, str):
                categories.setdefault(name, Counter())[value] += 1
            else:
                numbers.setdefault(name, []).append(value)
    numeric = {}
    for name, values in sorted(numbers.items()):
        edges = _decile_edges(values)
        profile = NumericProfile(edges, [], sorted(values)[len(values) // 2])
        profile.counts = profile.histogram(values)
        numeric[name] = profile
    categorical = {name: dict(counts.most_common()) for name, counts in sorted(categories.items())}
    return InputProfile(len(samples), numeric, categorical, vocabulary)


def training_profile(samples: Iterable[InputSample | None], limit: int = 50_000, seed: int = 0) -> InputProfile:
    """The profile of a training set's inputs (None entries left out), on a seeded sample of
    ``limit`` when there are more."""
    import random

    kept = [s for s in samples if s is not None]
    if len(kept) > limit:
        kept = random.Random(seed).sample(kept, limit)
    return build_profile(kept)


def write_profile(run_dir: Path, profile: InputProfile) -> Path:
    """Write ``profile`` to ``run_dir/input_profile.json`` (atomically); returns the path."""
    path = Path(run_dir) / PROFILE_FILE
    atomic_write_text(path, json.dumps(profile.to_json(), indent=1) + "\n")
    return path


def read_profile(run_dir: Path) -> InputProfile | None:
    """The profile in ``run_dir``; None when the run has none (trained before profiles existed)."""
    path = Path(run_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    return InputProfile.from_json(read_json_file(path, "input profile"), path)
