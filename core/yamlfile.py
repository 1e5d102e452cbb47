"""YAML files validated by pydantic models, with errors that name the file, line and field.

Run configs (:mod:`polyadapt.config`) and policies (:mod:`polyadapt.governance.policy`)
are both read this way, so a mistake in either gets the same kind of message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import ValidationError

from polyadapt.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    _Model = TypeVar("_Model", bound=BaseModel)
    #: Where a field sits in a validated mapping: keys and list positions (pydantic's ``loc``).
    Loc = tuple[int | str, ...]


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
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


def _model_at(model: Any, path: tuple[Any, ...]) -> Any:
    """The pydantic model class the field ``path`` of ``model`` holds, or None."""
    from pydantic import BaseModel

    for key in path:
        if isinstance(key, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or key not in fields:
            return None
        annotation = fields[key].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def closest_field(model: type[BaseModel], path: Loc, name: int | str) -> str | None:
    """The valid field name nearest to the unknown ``name`` at ``path`` in ``model``, if any is close."""
    import difflib

    holder = _model_at(model, path)
    if holder is None:
        return None
    names = [field.alias or key for key, field in holder.model_fields.items()]
    match = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    return match[0] if match else None


def _field_description(model: type[BaseModel], path: Loc) -> str | None:
    """The ``description`` of the field at ``path`` in ``model``, if it has one."""
    holder = _model_at(model, path[:-1])
    field = holder.model_fields.get(str(path[-1])) if holder is not None else None
    return field.description if field is not None else None


def format_validation_error(
    error: ValidationError,
    source: str,
    root: yaml.Node | None,
    *,
    what: str,
    schema_hint: str,
    prefix: Loc = (),
    model: type[BaseModel] | None = None,
) -> str:
    """One message: ``source: invalid <what>``, then a line per problem with line and field.

    ``prefix`` is where the validated mapping sits in the file (``("task_options",)`` for a
    task's options); ``model`` (the validated class) lets an unknown field be answered with
    the closest valid name.
    """
    lines = [f"{source}: invalid {what}"]
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic appends union member names ("list[str]") to loc; keep the field path only
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"literal"})))
        inner = loc
        loc = prefix + loc
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(root, loc)
        where = f"line {line}, " if line else ""
        message = item["msg"]
        if item["type"] == "missing":
            message = "required field is missing; add it"
        elif item["type"] == "extra_forbidden":
            nearest = closest_field(model, inner[:-1], inner[-1]) if model is not None and inner else None
            hint = f"did you mean {nearest!r}? " if nearest else ""
            message = f"unknown field; {hint}check the spelling (see {schema_hint})"
        elif item["type"] == "string_pattern_mismatch" and model is not None and inner:
            message = f"not an allowed value: {_field_description(model, inner) or message}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
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


def validate(
    model: type[_Model],
    data: object,
    source: str,
    root: yaml.Node | None,
    *,
    what: str,
    schema_hint: str,
    prefix: Loc = (),
) -> _Model:
    """``model.model_validate(data)``, its errors turned into one :class:`ConfigError`.

    ``prefix`` is where ``data`` sits in the file, for line numbers and field names.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, source, root, what=what, schema_hint=schema_hint, prefix=prefix, model=model)
        ) from None


#: Larger than any config or policy anyone writes by hand: a file this big was given by mistake.
MAX_YAML_BYTES = 10 * 1024 * 1024


def read_text(path: Path, what: str, missing_hint: str = "") -> str:
    """The text of ``path`` (UTF-8, or UTF-16/32 with a byte-order mark); a :class:`ConfigError`
    naming it and saying what is wrong when it is missing, a folder, a FIFO, binary or not text."""
    import stat

    from polyadapt.textfiles import TextDecodeError, decode_text

    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        parent = path.parent
        where = "" if parent.is_dir() else f" (the folder {parent} does not exist either)"
        raise ConfigError(f"{path}: no such {what}{where}{missing_hint}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path}: is a folder; the {what} is a YAML file{missing_hint}")
    if not stat.S_ISREG(info.st_mode):  # reading a FIFO would block for ever
        raise ConfigError(f"{path}: is not a regular file (a FIFO, socket or device); the {what} is a YAML file")
    if info.st_size > MAX_YAML_BYTES:
        raise ConfigError(
            f"{path}: {info.st_size:,} bytes is too large for a {what} (at most {MAX_YAML_BYTES:,}); "
            "is this the right file?"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        return decode_text(data)
    except TextDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; the {what} must be YAML text (UTF-8)") from None
