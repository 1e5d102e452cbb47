"""Labelled records: a text and the class it belongs to (text classification data).

A record is kept as it was written, every field included, once it has a non-blank text
(``text_field``) and a label (``label_field``); the label is normalised to a string
(``1`` becomes ``"1"``, surrounding spaces dropped), since a classifier's classes are names.
Records without either are quarantined with the file line and a reason naming the field.
Governance scans the text field only: the label is a class name, not free text.

    {"text": "A tree fell on my garage last night.", "label": "claim", "channel": "email"}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from polyadapt.modalities.records import Dataset
from polyadapt.modalities.tabular import DEFAULT_MAX_RECORD_CHARS, ParseFailure, read_records

#: What :attr:`Dataset.kind` says for labelled records.
KIND = "labelled"


def label_value(value: Any) -> str | None:
    """``value`` as a class name, or None when it holds none (missing, blank, NaN, a list...)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def normalise_labelled(record: Any, text_field: str = "text", label_field: str = "label") -> dict[str, Any] | str:
    """The record with its label as a string, or a string saying why it was rejected."""
    if isinstance(record, ParseFailure):
        return str(record)
    if not isinstance(record, dict):
        return f"not an object: got {type(record).__name__}"
    text = record.get(text_field)
    if not isinstance(text, str) or not text.strip():
        return f"missing text: field {text_field!r} is missing, blank or not a string"
    label = label_value(record.get(label_field))
    if label is None:
        return f"missing label: field {label_field!r} is missing, blank or not a string or number"
    return {**record, label_field: label}


def load_labelled_dataset(
    path: Path | str,
    format: str = "auto",
    text_field: str = "text",
    label_field: str = "label",
    *,
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
) -> Dataset:
    """Load labelled records from a jsonl, csv or parquet file.

    :param path: the data file.
    :param format: ``auto`` (from the extension), ``jsonl``, ``csv`` or ``parquet``.
    :param text_field: the field holding the text to classify (scanned by governance).
    :param label_field: the field holding its class.
    :param max_record_chars: a record with more characters is quarantined (``data.max_record_chars``).
    :returns: a :class:`~polyadapt.modalities.records.Dataset` of kind ``labelled`` whose
        records keep every field; records without a text or a label are quarantined with
        their line and reason.
    :raises DataError: the file is missing or unreadable, or no record is usable.
    """
    path = Path(path)
    rows = read_records(path, format, max_record_chars=max_record_chars)
    dataset = Dataset(source=path, kind=KIND, scanned_fields=(text_field,))
    for index, (line, raw) in enumerate(rows):
        dataset.take(index, line, normalise_labelled(raw, text_field, label_field))
    return dataset.require_records(f"labelled records (each needs a {text_field!r} and a {label_field!r} field)")
