"""The plugin reference, generated from the docstrings of :class:`polyadapt.task.Task`,
:mod:`polyadapt.hookspecs` and the records plugins meet.

    python -m polyadapt.hookdocs > docs/plugin_hooks.md      # or: polyadapt plugin hooks

It has three parts. **The Task class**: its class attributes (each documented with a
``#:`` comment above it) and every public method (:func:`task_methods`), each with its
signature and docstring; a method without a docstring is refused. **The hooks**: every
hook's docstring has the same parts, and :func:`parse_hook` refuses one that lacks any: a
one-line summary; a paragraph saying when it is ``Called``; ``:param NAME:`` for each
argument; ``:returns:``; ``Call semantics:`` (``firstresult`` or not, who is called); an
``Example::`` block; ``Added in plugin API X``. **Records**: the fields and members of
:data:`RECORDS`. A test regenerates the reference and fails when ``docs/plugin_hooks.md``
is stale or misses a hook or a Task method.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

from polyadapt import PLUGIN_API_VERSION, hookspecs, task

#: The record types plugins meet, documented after the hooks (module, class name).
RECORDS = [
    ("polyadapt.types", "Run"),
    ("polyadapt.modalities.records", "Dataset"),
    ("polyadapt.modalities.records", "RunData"),
    ("polyadapt.training", "TrainingJob"),
    ("polyadapt.types", "AdapterArtifact"),
    ("polyadapt.types", "EvalReport"),
    ("polyadapt.types", "MetricRow"),
    ("polyadapt.types", "ServeSpec"),
    ("polyadapt.types", "Servable"),
    ("polyadapt.types", "GenerationRequest"),
    ("polyadapt.types", "GenerationResult"),
    ("polyadapt.serving.routes", "Route"),
    ("polyadapt.serving.routes", "RouteContext"),
    ("polyadapt.serving.routes", "Target"),
    ("polyadapt.serving.routes", "Upload"),
    ("polyadapt.serving.routes", "TextResponse"),
    ("polyadapt.serving.schemas", "ApiError"),
    ("polyadapt.governance.scanners", "Scanner"),
    ("polyadapt.governance.scanners", "Finding"),
    ("polyadapt.monitoring.profile", "InputSample"),
]
#: Where a plugin author reads what changed from plugin API 1.x.
MIGRATION_GUIDE = "docs/migrating-to-plugin-api-2.md"


class HookDocError(ValueError):
    """A hook's docstring lacks a part the reference needs."""


@dataclass
class HookDoc:
    """The parts of one hook's docstring."""

    name: str
    signature: str
    firstresult: bool
    summary: str = ""
    when: list[str] = field(default_factory=list)
    params: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (type, meaning)
    returns: str = ""
    semantics: str = ""
    example: str = ""
    added: str = ""


def hooks() -> list[Any]:
    """The hook specs in the order :mod:`polyadapt.hookspecs` defines them."""
    found = [obj for name, obj in vars(hookspecs).items() if name.startswith("polyadapt_") and callable(obj)]
    return sorted(found, key=lambda hook: hook.__code__.co_firstlineno)


# -- reStructuredText bits -> Markdown ------------------------------------------------------


def inline(text: str) -> str:
    """Inline reST to Markdown: ``code``, :class:`~mod.Name` and friends."""
    text = re.sub(r":(?:class|func|meth|data|mod|attr|exc):`~[\w.]*?\.?(\w+)`", r"`\1`", text)
    text = re.sub(r":(?:class|func|meth|data|mod|attr|exc):`([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines; an indented block after ``::`` stays one block."""
    return [block for block in re.split(r"\n\s*\n", text.strip("\n")) if block.strip()]


def blocks_to_markdown(text: str) -> str:
    """Paragraphs of reST prose (with ``::`` literal blocks) as Markdown."""
    out: list[str] = []
    literal_next = False
    for block in _paragraphs(text):
        if literal_next and block.startswith((" ", "\t")):
            out.append("```text\n" + textwrap.dedent(block) + "\n```")
            continue
        literal_next = block.rstrip().endswith("::")
        prose = block.rstrip()
        if literal_next:
            prose = prose[:-2].rstrip() + ":" if not prose.endswith(" ::") else prose[:-3]
        out.append(inline(" ".join(line.strip() for line in prose.splitlines())))
    return "\n\n".join(out)


# -- parsing --------------------------------------------------------------------------------


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    return value if isinstance(value, str) else getattr(value, "__name__", str(value))


def method_signature(function: Any) -> str:
    """``(a: int, *, b: str = 'x') -> R`` of a method, without ``self`` and with its annotations
    unquoted (they are strings under ``from __future__ import annotations``)."""
    sig = inspect.signature(function)
    params = [p for name, p in sig.parameters.items() if name != "self"]
    parts, star = [], False
    for param in params:
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        prefix = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else ""
        prefix = "**" if param.kind is inspect.Parameter.VAR_KEYWORD else prefix
        star = star or param.kind is inspect.Parameter.VAR_POSITIONAL
        text = prefix + param.name
        kind = _annotation(param.annotation)
        if kind:
            text += f": {kind}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}" if kind else f"={param.default!r}"
        parts.append(text)
    returns = _annotation(sig.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {returns}" if returns and returns != "None" else "")


def _signature(hook: Any) -> tuple[str, dict[str, str]]:
    sig = inspect.signature(hook)
    types = {name: _annotation(p.annotation) for name, p in sig.parameters.items()}
    args = ", ".join(f"{name}: {kind}" if kind else name for name, kind in types.items())
    returns = _annotation(sig.return_annotation)
    return f"{hook.__name__}({args})" + (f" -> {returns}" if returns else ""), types


def parse_hook(hook: Any) -> HookDoc:
    """Split ``hook``'s docstring into its parts; :class:`HookDocError` names the missing ones."""
    signature, types = _signature(hook)
    opts = getattr(hook, f"{hookspecs.PROJECT_NAME}_spec", {}) or {}
    doc = HookDoc(name=hook.__name__, signature=signature, firstresult=bool(opts.get("firstresult")))
    text = inspect.getdoc(hook) or ""
    blocks = _paragraphs(text)
    if blocks:
        doc.summary = inline(" ".join(line.strip() for line in blocks[0].splitlines()))
    expecting_example = False
    example: list[str] = []  # the indented blocks after "Example::" (blank lines inside it split it)
    for block in blocks[1:]:
        stripped = block.strip()
        if expecting_example and block.startswith((" ", "\t")):
            example.append(block)
            doc.example = textwrap.dedent("\n\n".join(example)).strip("\n")
            continue
        expecting_example = False
        if stripped.startswith(":param") or stripped.startswith(":returns:"):
            for item in re.split(r"\n(?=:)", stripped):
                item = " ".join(line.strip() for line in item.splitlines())
                if match := re.match(r":param (\w+):\s*(.*)", item):
                    doc.params[match.group(1)] = (types.get(match.group(1), ""), inline(match.group(2)))
                elif item.startswith(":returns:"):
                    doc.returns = inline(item.removeprefix(":returns:").strip())
        elif stripped.startswith("Call semantics:"):
            semantics = stripped.removeprefix("Call semantics:").splitlines()
            doc.semantics = inline(" ".join(line.strip() for line in semantics).strip())
        elif stripped == "Example::":
            expecting_example = True
        elif stripped.startswith("Added in plugin API"):
            doc.added = stripped.removeprefix("Added in plugin API").strip().rstrip(".")
        else:
            doc.when.append(block)

    missing = []
    if not doc.summary:
        missing.append("a summary line")
    if not any(re.search(r"\bCalled\b", block) for block in doc.when):
        missing.append("when it is called (a paragraph saying 'Called ...')")
    missing += [f"':param {name}:'" for name in types if name not in doc.params]
    missing += [f"':param {name}:' names no argument of the hook" for name in doc.params if name not in types]
    if not doc.returns:
        missing.append("':returns:'")
    if not doc.semantics:
        missing.append("'Call semantics:' (firstresult or not, which plugins are called)")
    if not doc.example:
        missing.append("an 'Example::' block")
    if not doc.added:
        missing.append("'Added in plugin API X'")
    if missing:
        raise HookDocError(f"{hook.__name__}: the docstring lacks " + "; ".join(missing))
    return doc


# -- the Task class -------------------------------------------------------------------------


@dataclass
class MethodDoc:
    """One public method of :class:`polyadapt.task.Task`."""

    name: str
    signature: str
    summary: str
    body: str
    params: dict[str, str] = field(default_factory=dict)
    returns: str = ""
    required: bool = False  # the base class has no answer: a task that is asked must write it


def task_methods(cls: type = task.Task) -> list[Any]:
    """The public methods ``cls`` defines, in source order."""
    found = [value for name, value in vars(cls).items() if not name.startswith("_") and inspect.isfunction(value)]
    return sorted(found, key=lambda function: function.__code__.co_firstlineno)


def task_attributes(cls: type = task.Task) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, meaning)`` of each class attribute ``cls`` declares with a
    ``#:`` comment above it; :class:`HookDocError` for a declared field without one."""
    source = textwrap.dedent(inspect.getsource(cls))
    found: list[tuple[str, str, str, str]] = []
    comment: list[str] = []
    for line in source.splitlines():
        if not line.startswith("    ") or line.startswith("     "):  # the class body's own lines only
            comment = []
            continue
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+):\s*(?:ClassVar\[(.+)\]|(.+?))\s*=\s*(.+)$", stripped)
        if match and comment:
            found.append((match.group(1), match.group(2) or match.group(3), match.group(4), inline(" ".join(comment))))
        comment = []
    documented = {name for name, *_ in found}
    missing = [name for name in getattr(task, "DECLARED_FIELDS", ()) if name not in documented]
    if missing:
        raise HookDocError(f"{cls.__name__}: the attributes {missing} lack a '#:' comment above them")
    return found


def parse_method(function: Any) -> MethodDoc:
    """The parts of one Task method's docstring; :class:`HookDocError` when it has none."""
    doc = inspect.getdoc(function)
    if not doc:
        raise HookDocError(f"Task.{function.__name__}: the method has no docstring")
    signature = method_signature(function)
    blocks = _paragraphs(doc)
    method = MethodDoc(
        name=function.__name__,
        signature=f"{function.__name__}{signature}",
        summary=inline(" ".join(line.strip() for line in blocks[0].splitlines())),
        body="",
        required="raise NotImplementedError" in inspect.getsource(function),
    )
    prose = []
    for block in blocks[1:]:
        stripped = block.strip()
        if stripped.startswith((":param", ":returns:")):
            for item in re.split(r"\n(?=:)", stripped):
                item = " ".join(line.strip() for line in item.splitlines())
                if match := re.match(r":param (\w+):\s*(.*)", item):
                    method.params[match.group(1)] = inline(match.group(2))
                elif item.startswith(":returns:"):
                    method.returns = inline(item.removeprefix(":returns:").strip())
        else:
            prose.append(block)
    method.body = blocks_to_markdown("\n\n".join(prose)) if prose else ""
    return method


def _anchor(heading: str) -> str:
    """The GitHub anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def render_task(cls: type = task.Task) -> str:
    """The Task class: what it is, its attributes, an index of its methods, each method."""
    methods = [parse_method(function) for function in task_methods(cls)]
    lines = [
        "## The Task class",
        "",
        f"`{cls.__module__}.{cls.__name__}`. {_first_line(cls.__doc__)}",
        "",
        blocks_to_markdown(inspect.getdoc(sys.modules[cls.__module__]) or ""),
        "",
        "**Class attributes**",
        "",
        "| attribute | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{name}` | `{cell(kind)}` | `{cell(default)}` | {cell(meaning)} |"
        for name, kind, default, meaning in task_attributes(cls)
    ]
    lines += [
        "",
        "**Methods** (in the order the core asks them)",
        "",
        "| method | default | what it answers |",
        "| --- | --- | --- |",
    ]
    for method in methods:
        default = "none: write it" if method.required else "yes"
        lines.append(f"| [`{method.name}`](#{_anchor('Task.' + method.name)}) | {default} | {cell(method.summary)} |")
    lines.append("")
    for method in methods:
        lines += [f"### Task.{method.name}", "", "```python", method.signature, "```", "", method.summary, ""]
        if method.required:
            lines += ["*No default: a task the core asks this must override it.*", ""]
        if method.body:
            lines += [method.body, ""]
        if method.params:
            lines += ["**Arguments**", "", "| name | meaning |", "| --- | --- |"]
            lines += [f"| `{name}` | {cell(meaning)} |" for name, meaning in method.params.items()]
            lines.append("")
        if method.returns:
            lines += [f"**Returns**: {method.returns}", ""]
    return "\n".join(lines)


# -- rendering ------------------------------------------------------------------------------


def cell(text: str) -> str:
    """``text`` made safe for a Markdown table cell (``|`` in types such as ``str | None``)."""
    return text.replace("|", "\\|")


def render_hook(doc: HookDoc) -> str:
    kind = "firstresult: the first non-None answer wins" if doc.firstresult else "all plugins answer"
    lines = [
        f"## {doc.name}",
        "",
        "```python",
        doc.signature,
        "```",
        "",
        doc.summary,
        "",
        f"*{kind}; added in plugin API {doc.added}*",
        "",
        "**When it is called.** " + blocks_to_markdown("\n\n".join(doc.when)),
        "",
    ]
    if doc.params:
        lines += ["**Arguments**", "", "| name | type | meaning |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | `{cell(kind)}` | {cell(meaning)} |" for name, (kind, meaning) in doc.params.items()]
    else:
        lines += ["**Arguments**: none."]
    lines += [
        "",
        f"**Returns**: {doc.returns}",
        "",
        f"**Call semantics**: {doc.semantics}",
        "",
        "**Example**",
        "",
        "```python",
        doc.example,
        "```",
        "",
    ]
    return "\n".join(lines)


def _record_fields(cls: Any) -> list[tuple[str, str]]:
    if dataclasses.is_dataclass(cls):
        return [(f.name, _annotation(f.type)) for f in dataclasses.fields(cls)]
    hints = getattr(cls, "__annotations__", {})
    return [(name, _annotation(kind)) for name, kind in hints.items()]


def _first_line(text: str | None) -> str:
    """The first paragraph of a docstring as one line of Markdown."""
    if not text or not text.strip():
        return ""
    return inline(" ".join(line.strip() for line in _paragraphs(inspect.cleandoc(text))[0].splitlines()))


def _split_params(doc: str) -> tuple[str, dict[str, str]]:
    """A class docstring without its ``:param NAME:`` lines, and what those say per name."""
    prose, params = [], {}
    for block in _paragraphs(doc):
        if block.strip().startswith(":param"):
            for item in re.split(r"\n(?=:param)", block.strip()):
                if match := re.match(r":param (\w+):\s*(.*)", " ".join(line.strip() for line in item.splitlines())):
                    params[match.group(1)] = inline(match.group(2))
        else:
            prose.append(block)
    return "\n\n".join(prose), params


def render_record(module: str, name: str) -> str:
    """One record: its docstring, its fields (with their ``:param:`` meanings) and members."""
    __import__(module)
    cls = getattr(sys.modules[module], name)
    prose, meanings = _split_params(inspect.getdoc(cls) or "")
    lines = [f"### {name}", "", f"`{module}.{name}`", "", blocks_to_markdown(prose), ""]
    if isinstance(cls, type) and issubclass(cls, Exception) and "__init__" in vars(cls):
        lines += [f"Raise it as `{name}{method_signature(cls.__init__)}`.", ""]
    fields = _record_fields(cls)
    if fields and meanings:
        lines += ["| field | type | meaning |", "| --- | --- | --- |"]
        lines += [
            f"| `{field_name}` | `{cell(kind)}` | {cell(meanings.get(field_name, '-'))} |"
            for field_name, kind in fields
        ]
        lines.append("")
    elif fields:
        lines += ["| field | type |", "| --- | --- |"]
        lines += [f"| `{field_name}` | `{cell(kind)}` |" for field_name, kind in fields]
        lines.append("")
    members = []
    for attr, value in vars(cls).items():
        if attr.startswith("_") or attr in {"to_dict", "from_dict"}:
            continue
        if isinstance(value, property):
            members.append((attr, "property", _first_line(value.fget.__doc__)))
        elif inspect.isfunction(value):
            members.append((f"{attr}{method_signature(value)}", "method", _first_line(value.__doc__)))
    if members:
        lines += ["| member | kind | what it does |", "| --- | --- | --- |"]
        lines += [f"| `{cell(member)}` | {kind} | {cell(text) or '-'} |" for member, kind, text in members]
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    """The whole reference as Markdown."""
    parsed = [parse_hook(hook) for hook in hooks()]
    major = int(PLUGIN_API_VERSION.split(".")[0])
    header = [
        "# Plugin reference: the Task class, the hooks, the records",
        "",
        "<!-- Generated from core/task.py, core/hookspecs.py and the records' docstrings by",
        "     `python -m polyadapt.hookdocs > docs/plugin_hooks.md`; do not edit by hand:",
        "     tests/test_plugin_docs.py fails when this file is stale. -->",
        "",
        f"Plugin API version **{PLUGIN_API_VERSION}**. A plugin states the range it supports in its",
        f'entry module, `POLYADAPT_API = ">={major},<{major + 1}"`; `polyadapt plugins` shows a plugin',
        "outside its range as *broken*, with the reason, and loads the others. A plugin returns",
        "`Task` objects from `polyadapt_tasks`; the core runs every step of a run and asks the task",
        "only what its modality knows. A step-by-step guide: `docs/plugin_tutorial.md`; coming",
        f"from plugin API 1.x: `{MIGRATION_GUIDE}`.",
        "",
        "- [The Task class](#the-task-class)",
        "- [Hooks](#hooks)",
        "- [Records](#records)",
        "",
        render_task(),
        "## Hooks",
        "",
        "Implement a hook with `from polyadapt.hookspecs import hookimpl` and a function of the",
        "hook's name; it may take fewer arguments than the spec names.",
        "",
        blocks_to_markdown(inspect.getdoc(hookspecs) or ""),
        "",
        "| hook | called on | answers |",
        "| --- | --- | --- |",
    ]
    for doc in parsed:
        called_on = "every plugin's wrappers, around the core" if doc.firstresult else "every plugin"
        answers = "first non-None (the core's is last)" if doc.firstresult else "all, gathered"
        header.append(f"| [`{doc.name}`](#{doc.name}) | {called_on} | {answers} |")
    body = [render_hook(doc) for doc in parsed]
    records = [
        "## Records",
        "",
        "The records tasks, hooks and routes receive and return. `polyadapt.types`,",
        "`polyadapt.modalities.records` and `polyadapt.serving.routes` import nothing heavy;",
        "`polyadapt.training` imports torch, so a task imports it inside its methods.",
        "",
    ]
    records += [render_record(module, name) for module, name in RECORDS]
    return "\n".join(header) + "\n\n" + "\n".join(body) + "\n" + "\n".join(records).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":  # pragma: no cover
    main()
