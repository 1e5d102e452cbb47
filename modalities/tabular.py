"""Reading records from jsonl, csv and parquet files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from polyadapt.errors import DataError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def detect_format(path: Path, declared: str = "auto") -> str:
    """The file format: ``declared`` unless ``auto``, else from the extension."""
    if declared != "auto":
        return declared
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; use .jsonl, "
            ".csv or .parquet, or set data.format"
        ) from None


def read_records(path: Path, declared_format: str = "auto") -> list[tuple[int | None, Any]]:
    """Every record in ``path`` as ``(line, record)``; ``line`` is None where lines mean nothing.

    A record that cannot be parsed (a bad JSON line) is returned as ``(line, ParseFailure)``
    so the caller can quarantine it with its reason and go on.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    fmt = detect_format(path, declared_format)
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as handle:
            # line numbers count the header as line 1
            return [(reader_line + 2, dict(row)) for reader_line, row in enumerate(csv.DictReader(handle))]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DataError(f"{path}: not a readable parquet file: {exc}") from None
        return [(None, row) for row in table.to_pylist()]
    raise DataError(f"{path}: unsupported format {fmt!r}")


class ParseFailure(str):
    """The reason a line could not be parsed (a str, so it can be reported as is)."""


def _read_jsonl(path: Path) -> list[tuple[int | None, Any]]:
    rows: list[tuple[int | None, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                rows.append((number, ParseFailure(f"invalid JSON: {exc.msg} at column {exc.colno}")))
    return rows
