"""YAML files validated by pydantic models, with errors that name the file, line and field.

Run configs (:mod:`polyadapt.config`) and policies (:mod:`polyadapt.governance.policy`)
are both read this way, so a mistake in either gets the same kind of message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from polyadapt.errors import ConfigError


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line in the YAML source of the field at ``loc``, or of its nearest parent."""
    node, line = root, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
            if node is not None:
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def format_validation_error(error: ValidationError, source: str, root: yaml.Node | None, *,
                            what: str, schema_hint: str) -> str:
    """One message: ``source: invalid <what>``, then a line per problem with line and field."""
    lines = [f"{source}: invalid {what}"]
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic appends union member names ("list[str]") to loc; keep the field path only
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"literal"})))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(root, loc)
        where = f"line {line}, " if line else ""
        message = item["msg"]
        if item["type"] == "missing":
            message = "required field is missing; add it"
        elif item["type"] == "extra_forbidden":
            message = f"unknown field; check the spelling (see {schema_hint})"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        shown = "" if item["type"] == "missing" else f" (got {item.get('input')!r})"
        lines.append(f"  {where}{field}: {message}{shown}")
    return "\n".join(lines)


def parse_mapping(text: str, source: str, what: str) -> tuple[yaml.Node | None, dict[str, Any]]:
    """The YAML node tree (for line numbers) and the mapping in ``text``; :class:`ConfigError` else."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a {what} must be a mapping of fields, got {type(data).__name__}")
    return root, data


def validate(model: Any, data: dict[str, Any], source: str, root: yaml.Node | None, *,
             what: str, schema_hint: str) -> Any:
    """``model.model_validate(data)``, its errors turned into one :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, root, what=what, schema_hint=schema_hint)) from None


def read_text(path: Path, what: str, missing_hint: str = "") -> str:
    """The text of ``path``; a :class:`ConfigError` naming it when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}{missing_hint}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
