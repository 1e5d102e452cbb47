"""Reading records from jsonl, csv and parquet files.

Whatever the file holds, one bad record never ends the read: a line that is not UTF-8, holds
a NUL byte, is not JSON, a CSV row with more or fewer cells than the header, a record above
``data.max_record_chars`` come back as a :class:`ParseFailure` with their line, for the caller
to quarantine. A file that cannot be read as records at all (missing, a folder, binary,
UTF-16 without a byte-order mark, an unreadable parquet) is one :class:`DataError` that
names it and says what to do (see :mod:`polyadapt.modalities.datafile`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from polyadapt.errors import DataError
from polyadapt.modalities.datafile import (
    DEFAULT_MAX_RECORD_CHARS,
    Line,
    check_data_file,
    open_data_file,
    oversize,
    sniff_encoding,
    text_lines,
)

__all__ = ["DEFAULT_MAX_RECORD_CHARS", "FORMATS", "ParseFailure", "detect_format", "read_records"]

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}

Rows = list[tuple[int | None, Any]]


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


class ParseFailure(str):
    """The reason a record could not be read (a str, so it can be reported as is)."""


def read_records(
    path: Path, declared_format: str = "auto", *, max_record_chars: int = DEFAULT_MAX_RECORD_CHARS
) -> Rows:
    """Every record in ``path`` as ``(line, record)``; ``line`` is None where lines mean nothing.

    A record that cannot be read (bytes that are not UTF-8, a bad JSON line, a ragged CSV
    row, more than ``max_record_chars`` characters) is returned as ``(line, ParseFailure)``
    so the caller can quarantine it with its reason and go on. UTF-8 with or without a
    byte-order mark is read, and UTF-16/32 with one. A file with no records at all, or that
    is not a data file, raises :class:`DataError` naming the file and what to do.
    """
    path = Path(path)
    check_data_file(path)
    fmt = detect_format(path, declared_format)
    if fmt == "parquet":
        rows = _read_parquet(path, max_record_chars)
    elif fmt in ("jsonl", "csv"):
        try:
            with open_data_file(path) as handle:
                lines = text_lines(path, handle, sniff_encoding(path, handle, fmt), max_record_chars)
                rows = _jsonl_rows(lines) if fmt == "jsonl" else _csv_rows(path, lines, max_record_chars)
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    else:
        raise DataError(f"{path}: unsupported format {fmt!r}")
    if not rows:
        what = "only a header" if fmt == "csv" else "only blank lines" if fmt == "jsonl" else "no rows"
        raise DataError(f"{path}: no records: the file holds {what}")
    return rows


def _jsonl_rows(lines: Iterable[Line]) -> Rows:
    rows: Rows = []
    for number, text, problem in lines:
        if problem is not None:
            rows.append((number, ParseFailure(problem)))
            continue
        text = text.lstrip("\ufeff")  # a byte-order mark where files were joined
        if not text.strip():
            continue
        try:
            rows.append((number, json.loads(text)))
        except json.JSONDecodeError as exc:
            rows.append((number, ParseFailure(f"invalid JSON: {exc.msg} at column {exc.colno}")))
        except ValueError as exc:  # a number too long to convert
            rows.append((number, ParseFailure(f"invalid JSON: {exc}")))
        except RecursionError:
            rows.append((number, ParseFailure("invalid JSON: nested too deeply to read")))
    return rows


def _csv_rows(path: Path, lines: Iterable[Line], max_chars: int) -> Rows:
    """The rows of a CSV file as dicts keyed by its header, line numbers the file's own
    (a quoted field may hold line breaks: a row's line is the one it starts on)."""
    problems: dict[int, str] = {}

    def texts() -> Iterator[str]:
        for number, text, problem in lines:
            if problem is not None:
                problems[number] = problem
            yield text

    # strict: a quote left open is an error at the end of the file, not the rest of the file
    # read silently as one field
    reader = csv.reader(texts(), strict=True)
    header: list[str] | None = None
    rows: Rows = []
    last = 0
    limit = csv.field_size_limit(max_chars)  # a longer field makes the record oversize anyway
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, last = last + 1, reader.line_num
                reason = _csv_error(exc, max_chars, start, last)
                if header is None:
                    raise DataError(f"{path}: cannot read the header (line {start}): {reason}") from None
                rows.append((start, ParseFailure(reason)))
                continue
            start, last = last + 1, reader.line_num
            problem = None
            if problems:
                problem = next((problems[n] for n in range(start, last + 1) if n in problems), None)
            if not cells and problem is None:
                continue  # a blank line
            if header is None:
                header = _header(path, cells, start, problem)
                continue
            record = ParseFailure(problem) if problem else _csv_record(header, cells, start, last, max_chars)
            rows.append((start, record))
    finally:
        csv.field_size_limit(limit)
    if header is None:
        raise DataError(f"{path}: no records: the file holds only blank lines")
    return rows


def _csv_error(exc: csv.Error, max_chars: int, start: int, end: int) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return (
            f"bad CSV: a quote opened in this row is never closed (lines {start} to {end}, the end of the "
            "file, were read as one field); close it"
        )
    if "expected after" in message:
        return (
            'bad CSV: text after a closing quote (like "a"b); quote the whole field and double the quotes '
            'inside it ("a""b")'
        )
    if "field larger than field limit" in message:
        return (
            f"oversize: a field is longer than data.max_record_chars ({max_chars:,}); split the record or "
            "raise the bound (or close a quote left open above it)"
        )
    if "new-line character" in message:
        return "bad CSV: a bare carriage return (\\r) outside quotes; save the file with \\n or \\r\\n line ends"
    return f"bad CSV: {message}"


def _header(path: Path, cells: list[str], line: int, problem: str | None) -> list[str]:
    if problem is not None:
        raise DataError(f"{path}: cannot read the header (line {line}): {problem}")
    seen: dict[str, int] = {}
    for position, name in enumerate(cells, 1):
        if name in seen:
            raise DataError(
                f"{path}: the header (line {line}) names column {name!r} twice (columns {seen[name]} and "
                f"{position}); rename one"
            )
        seen[name] = position
    return cells


def _csv_record(header: list[str], cells: list[str], start: int, end: int, max_chars: int) -> Any:
    """The row as a dict, or why it is rejected."""
    while len(cells) > len(header) and not cells[-1].strip():
        cells = cells[:-1]  # empty trailing cells (a trailing comma) carry nothing
    if len(cells) != len(header):
        cause = (
            "a comma inside an unquoted field? quote it"
            if len(cells) > len(header)
            else "a missing cell or a line break inside an unquoted field?"
        )
        if end > start:
            cause = f"the row runs from line {start} to line {end}: a quote left open?"
        return ParseFailure(f"ragged row: the row has {_cells(len(cells))}, the header has {len(header)} ({cause})")
    chars = sum(map(len, cells))
    if chars > max_chars:
        return ParseFailure(oversize(chars, max_chars))
    return dict(zip(header, cells, strict=True))


def _cells(count: int) -> str:
    return f"{count} cell" if count == 1 else f"{count} cells"


def _read_parquet(path: Path, max_chars: int) -> Rows:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(
            f"{path}: not a readable parquet file ({exc}); it may be truncated or not parquet at all: "
            "write it again, or set data.format to what it is"
        ) from None
    rows: Rows = []
    for row in table.to_pylist():
        chars = _chars(row)
        rows.append((None, ParseFailure(oversize(chars, max_chars)) if chars > max_chars else row))
    return rows


def _chars(value: Any) -> int:
    """The characters of the text in a parquet record (nested lists and structs included)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(item) for item in value.values())
    if isinstance(value, list):
        return sum(_chars(item) for item in value)
    return 0
