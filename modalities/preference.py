"""Preference pairs: a prompt, the answer to prefer and the answer to avoid (DPO, ORPO...).

Every record is normalised to::

    {"prompt": [{"role": ..., "content": ...}, ...], "chosen": str, "rejected": str}

``prompt`` may be written as a string (one user turn) or as chat messages (the conversation
so far, ending with a user turn). ``chosen`` and ``rejected`` may be strings or a single
assistant message (``{"role": "assistant", "content": ...}`` or a one-item list of it), as
chat-formatted preference sets write them. Fields the kind does not read are kept; the
prompt's contents, both answers and every other string field are scanned by governance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyadapt.modalities.records import Dataset
from polyadapt.modalities.tabular import DEFAULT_MAX_RECORD_CHARS, ParseFailure, read_records
from polyadapt.modalities.text import ROLES

#: The fields a preference record is read from.
READ_FIELDS = ("prompt", "chosen", "rejected")
#: Where governance scans a normalised preference record (plus the kept string fields).
SCANNED_FIELDS = ("prompt[].content", "chosen", "rejected")


def _answer(value: Any, field: str) -> str:
    """The text of an answer written as a string or as one assistant message; raises
    ValueError with the reason otherwise."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        if value.get("role", "assistant") != "assistant":
            raise ValueError(f"bad {field}: a message answer must have role 'assistant'")
        value = value.get("content")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"missing {field}: field {field!r} must hold the answer's text")
    return value


def _prompt(value: Any) -> list[dict[str, str]]:
    """The prompt as chat messages; raises ValueError with the reason otherwise."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("missing prompt: field 'prompt' is blank")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError("missing prompt: 'prompt' must be text or a non-empty list of {role, content}")
    messages = []
    for position, turn in enumerate(value):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise ValueError(
                f"bad prompt message {position}: each turn needs role (system, user or assistant) and content (text)"
            )
        messages.append({"role": turn["role"], "content": turn["content"]})
    if messages[-1]["role"] != "user":
        raise ValueError("bad prompt: the conversation must end with a user turn (the answers follow it)")
    return messages


def normalise_preference(record: Any) -> dict[str, Any] | str:
    """The normalised pair with the fields it does not read kept, or why it was rejected."""
    if isinstance(record, ParseFailure):
        return str(record)
    if not isinstance(record, dict):
        return f"not an object: got {type(record).__name__}"
    try:
        prompt = _prompt(record.get("prompt"))
        chosen, rejected = _answer(record.get("chosen"), "chosen"), _answer(record.get("rejected"), "rejected")
    except ValueError as exc:
        return str(exc)
    if chosen.strip() == rejected.strip():
        return "same answers: 'chosen' and 'rejected' are identical, so the pair teaches nothing"
    extra = {key: value for key, value in record.items() if key not in READ_FIELDS}
    return {**extra, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def load_preference_dataset(
    path: Path, declared_format: str = "auto", *, max_record_chars: int = DEFAULT_MAX_RECORD_CHARS
) -> Dataset:
    """Load and validate preference pairs (jsonl, csv or parquet); rejected records (longer
    than ``max_record_chars`` characters among them) are quarantined with the line and the reason."""
    rows = read_records(Path(path), declared_format, max_record_chars=max_record_chars)
    dataset = Dataset(source=Path(path), kind="preference", scanned_fields=SCANNED_FIELDS)
    for index, (line, raw) in enumerate(rows):
        dataset.take(index, line, normalise_preference(raw))
    kept_text = {
        key
        for record in dataset.records
        for key, value in record.items()
        if isinstance(value, str) and key not in READ_FIELDS
    }
    dataset.scanned_fields = SCANNED_FIELDS + tuple(sorted(kept_text))
    return dataset.require_records("preference pairs")
