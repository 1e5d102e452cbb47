"""Text records: plain text, instruction pairs and chat conversations.

Every record is normalised to one of two shapes:

- ``{"text": str}`` for plain text (kind ``text``);
- ``{"messages": [{"role": ..., "content": ...}, ...]}`` for instruction pairs and chats
  (kinds ``instruction`` and ``chat``); an instruction pair becomes a user turn (the
  instruction, plus its input) and an assistant turn (the response).

Fields a kind does not read (a ``label``, an ``id``, a ``source``) are kept beside those, so
a task can use them; the string ones are scanned by governance like the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polyadapt.errors import DataError
from polyadapt.modalities.records import Dataset
from polyadapt.modalities.tabular import DEFAULT_MAX_RECORD_CHARS, ParseFailure, read_records

PROMPT_FIELDS = ("instruction", "prompt", "question")
INPUT_FIELDS = ("input", "context")
RESPONSE_FIELDS = ("response", "output", "completion", "answer")
ROLES = {"system", "user", "assistant"}
KINDS = ("text", "instruction", "chat")

#: The fields governance must scan in a normalised text record.
SCANNED_FIELDS = ("text", "messages[].content")


def detect_kind(record: dict[str, Any]) -> str | None:
    """The kind a raw record looks like, or None when it matches none."""
    if "messages" in record:
        return "chat"
    if any(f in record for f in PROMPT_FIELDS) and any(f in record for f in RESPONSE_FIELDS):
        return "instruction"
    if "text" in record:
        return "text"
    return None


def _first(record: dict[str, Any], fields: tuple[str, ...]) -> Any:
    return next((record[f] for f in fields if record.get(f) not in (None, "")), None)


#: The fields each kind reads (and rewrites); every other field of a record is kept as is.
READ_FIELDS = {
    "text": ("text",),
    "instruction": (*PROMPT_FIELDS, *INPUT_FIELDS, *RESPONSE_FIELDS, "system"),
    "chat": ("messages",),
}


def extra_fields(record: dict[str, Any], kind: str) -> dict[str, Any]:
    """The fields of ``record`` that ``kind`` does not read, kept for the task."""
    return {key: value for key, value in record.items() if key not in READ_FIELDS[kind]}


def normalise(record: object, kind: str) -> dict[str, Any] | str:
    """The normalised record (with the fields the kind does not read kept), or a string
    saying why it was rejected."""
    if isinstance(record, ParseFailure):
        return str(record)
    if not isinstance(record, dict):
        return f"not an object: got {type(record).__name__}"
    shaped = _normalise_known(record, kind)
    return shaped if isinstance(shaped, str) else {**extra_fields(record, kind), **shaped}


def _normalise_known(record: dict[str, Any], kind: str) -> dict[str, Any] | str:
    if kind == "text":
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            return "empty text: field 'text' is missing or blank"
        return {"text": text}
    if kind == "instruction":
        prompt, response = _first(record, PROMPT_FIELDS), _first(record, RESPONSE_FIELDS)
        if not isinstance(prompt, str) or not prompt.strip():
            return f"missing prompt: none of {', '.join(PROMPT_FIELDS)} holds text"
        if not isinstance(response, str) or not response.strip():
            return f"missing response: none of {', '.join(RESPONSE_FIELDS)} holds text"
        extra = _first(record, INPUT_FIELDS)
        user = f"{prompt}\n\n{extra}" if isinstance(extra, str) and extra.strip() else prompt
        turns = []
        if isinstance(record.get("system"), str) and record["system"].strip():
            turns.append({"role": "system", "content": record["system"]})
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": response}]
        return {"messages": turns}
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return "bad messages: 'messages' must be a non-empty list of {role, content}"
    cleaned = []
    for position, turn in enumerate(messages):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            return f"bad message {position}: each turn needs role (system, user or assistant) and content (text)"
        cleaned.append({"role": turn["role"], "content": turn["content"]})
    if not any(turn["role"] == "assistant" and turn["content"].strip() for turn in cleaned):
        return "no assistant turn: a chat record needs at least one non-empty assistant message"
    return {"messages": cleaned}


def load_text_dataset(
    path: Path,
    declared_format: str = "auto",
    kind: str = "auto",
    *,
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
) -> Dataset:
    """Load and validate a text dataset; rejected records (longer than ``max_record_chars``
    characters among them) are quarantined with reasons."""
    rows = read_records(Path(path), declared_format, max_record_chars=max_record_chars)
    if kind == "auto":
        found = next(
            (detected for _, rec in rows if isinstance(rec, dict) and (detected := detect_kind(rec))),
            None,
        )
        if found is None and rows and all(isinstance(rec, ParseFailure) for _, rec in rows):
            line, reason = rows[0]
            raise DataError(f"{path}: no usable records; every one was rejected (first, line {line}: {reason})")
        if found is None:
            raise DataError(
                f"{path}: no record has the fields of a known kind: 'text' (plain text), "
                f"'instruction'/'prompt' + 'response'/'output' (instruction pairs) or "
                f"'messages' (chat); set data.kind or rename the fields"
            )
        kind = found
    if kind not in KINDS:
        raise DataError(f"{path}: unknown data kind {kind!r}; use one of {', '.join(KINDS)}")
    dataset = Dataset(source=Path(path), kind=kind, scanned_fields=SCANNED_FIELDS)
    for index, (line, raw) in enumerate(rows):
        dataset.take(index, line, normalise(raw, kind))
    kept_text = {
        key
        for record in dataset.records
        for key, value in record.items()
        if isinstance(value, str) and key not in SCANNED_FIELDS
    }
    dataset.scanned_fields = SCANNED_FIELDS + tuple(sorted(kept_text))
    return dataset.require_records(f"{kind} records")
