"""The dataset container every modality loader returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Quarantined:
    """A record that was rejected: where it was and why (never its content)."""

    source: str
    index: int
    reason: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        from polyadapt.fileio import portable_path

        return {"source": portable_path(self.source), "index": self.index, "line": self.line, "reason": self.reason}


def record_hash(record: object) -> str:
    """SHA-256 of a record's normalised content (sorted keys, UTF-8, no whitespace)."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Origins:
    """Where each record of a dataset came from, when the records do not all come from
    :attr:`Dataset.source` itself (a repository's files, the images of a folder).

    ``field`` is the record field naming the record's file (relative to ``source``);
    ``whole_file`` says that the record's scanned text is that file read whole, so a line
    break in the text is one of the file's (a finding's line is 1 plus the breaks before it).
    """

    field: str
    whole_file: bool = False
    #: What the files hold: ``"source"`` for program source and configuration files, which
    #: governance scans with its source rules (a secret is a literal, not a name; documentation
    #: values are not PII; tests follow the policy's ``source.test_files``), else ``"prose"``.
    content: str = "prose"


@dataclass
class Dataset:
    """Normalised records of one modality, with what was rejected on the way."""

    source: Path
    kind: str
    records: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    #: Where free text lies in a record, for governance to scan: ``"text"`` is a top-level
    #: string field, ``"messages[].content"`` the ``content`` of every item of a list.
    scanned_fields: tuple[str, ...] = ()
    #: The source line of each record in ``records`` (None where the format has no lines).
    lines: list[int | None] = field(default_factory=list)
    #: Where each record came from when not from ``source`` itself (see :class:`Origins`);
    #: governance names that file (and line) in its findings.
    origins: Origins | None = None
    #: The licences and copyright holders the loader found, and the engine that found them
    #: (JSON-ready; empty when the loader reads none): the dataset manifest records it.
    licensing: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def take(self, index: int, line: int | None, result: dict[str, Any] | str) -> None:
        """Keep a normalised record, or quarantine it when ``result`` is why it was rejected."""
        if isinstance(result, str):
            self.quarantined.append(Quarantined(str(self.source), index, result, line))
        else:
            self.records.append(result)
            self.lines.append(line)

    def origin(self, index: int) -> tuple[str, int | None]:
        """The file record ``index`` came from and its line there (None when unknown): the
        record's :attr:`origins` field, else :attr:`source` at the record's line."""
        from polyadapt.fileio import portable_path

        record = self.records[index]
        if self.origins is not None and isinstance(record.get(self.origins.field), str):
            return portable_path(record[self.origins.field]), 1 if self.origins.whole_file else None
        line = self.lines[index] if len(self.lines) == len(self.records) else None
        return portable_path(self.source), line

    def require_records(self, what: str) -> Dataset:
        """``self``; a :class:`DataError` naming the first rejection when nothing was usable."""
        if not self.records:
            from polyadapt.errors import DataError

            first = self.quarantined[0] if self.quarantined else None
            detail = f" (first rejection, line {first.line}: {first.reason})" if first else ""
            raise DataError(f"{self.source}: no usable {what}{detail}")
        return self

    def fingerprint(self) -> str:
        """One root hash over the ordered record hashes: same content, same hash, any machine."""
        digest = hashlib.sha256()
        for record in self.records:
            digest.update(record_hash(record).encode())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Counts and hashes for the run folder's ``data_summary.json``."""
        reasons: dict[str, int] = {}
        for item in self.quarantined:
            key = item.reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        from polyadapt.fileio import portable_path

        return {
            "source": portable_path(self.source),
            "kind": self.kind,
            "records": len(self.records),
            "quarantined": len(self.quarantined),
            "quarantine_reasons": reasons,
            "fingerprint": self.fingerprint(),
        }


def split_holdout(records: list[_T], fraction: float, seed: int) -> tuple[list[_T], list[_T]]:
    """Split ``records`` into (train, held-out) reproducibly: the same seed, the same split.

    At least one record is held out and at least one kept.
    """
    import random

    if len(records) < 2:
        return list(records), []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_holdout = min(len(records) - 1, max(1, round(len(records) * fraction)))
    held = set(order[:n_holdout])
    train = [r for i, r in enumerate(records) if i not in held]
    holdout = [r for i, r in enumerate(records) if i in held]
    return train, holdout


def quarantine_rows(sources: list[Dataset]) -> list[dict[str, Any]]:
    """Every rejected record of ``sources`` with its reason (never its content), for
    ``quarantine.jsonl``."""
    return [item.to_dict() for source in sources for item in source.quarantined]


@dataclass
class RunData:
    """The records of one run: training, held-out domain, general (forgetting check), replay,
    and the governed datasets they came from. Plugins with more to say extend :meth:`summary`."""

    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    general: list[dict[str, Any]] = field(default_factory=list)
    replay: list[dict[str, Any]] = field(default_factory=list)
    sources: list[Dataset] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts per use and each source's summary, for ``data_summary.json``."""
        return {
            "train_records": len(self.train),
            "heldout_records": len(self.heldout),
            "general_records": len(self.general),
            "replay_records": len(self.replay),
            "datasets": [source.summary() for source in self.sources],
        }

    def quarantine_rows(self) -> list[dict[str, Any]]:
        """Every rejected record of every source, with its reason (never its content)."""
        return quarantine_rows(self.sources)
