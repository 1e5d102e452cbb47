"""The plugin hook reference, generated from the docstrings in :mod:`polyadapt.hookspecs`.

    python -m polyadapt.hookdocs > docs/plugin_hooks.md      # or: polyadapt plugin hooks

Every hook's docstring has the same parts, and :func:`parse_hook` refuses one that lacks
any: a one-line summary; a paragraph saying when it is ``Called``; ``:param NAME:`` for
each argument; ``:returns:``; ``Call semantics:`` (``firstresult`` or not, who is called);
an ``Example::`` block; ``Added in plugin API X``. A test regenerates the reference and
fails when ``docs/plugin_hooks.md`` is stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

from polyadapt import PLUGIN_API_VERSION, hookspecs

#: The record types plugins meet, documented after the hooks (module, class name).
RECORDS = [
    ("polyadapt.types", "Task"),
    ("polyadapt.types", "Run"),
    ("polyadapt.types", "AdapterArtifact"),
    ("polyadapt.types", "EvalReport"),
    ("polyadapt.types", "MetricRow"),
    ("polyadapt.types", "ServeSpec"),
    ("polyadapt.types", "Servable"),
    ("polyadapt.types", "GenerationRequest"),
    ("polyadapt.types", "GenerationResult"),
    ("polyadapt.governance.scanners", "Scanner"),
    ("polyadapt.governance.scanners", "Finding"),
]


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
    for block in blocks[1:]:
        stripped = block.strip()
        if expecting_example and block.startswith((" ", "\t")):
            doc.example = textwrap.dedent(block).strip("\n")
            expecting_example = False
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
            doc.semantics = inline(" ".join(line.strip() for line in stripped.removeprefix("Call semantics:").splitlines()).strip())
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
    return inline(_paragraphs(text)[0].replace("\n", " ")) if text and text.strip() else ""


def render_record(module: str, name: str) -> str:
    __import__(module)
    cls = getattr(sys.modules[module], name)
    lines = [f"### {name}", "", f"`{module}.{name}`", "", blocks_to_markdown(inspect.getdoc(cls) or ""), ""]
    fields = _record_fields(cls)
    if fields:
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
            signature = str(inspect.signature(value)).replace("'", "").replace("(self, ", "(").replace("(self)", "()")
            members.append((f"{attr}{signature}", "method", _first_line(value.__doc__)))
    if members:
        lines += ["| member | kind | what it does |", "| --- | --- | --- |"]
        lines += [f"| `{cell(member)}` | {kind} | {cell(text) or '-'} |" for member, kind, text in members]
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    """The whole reference as Markdown."""
    parsed = [parse_hook(hook) for hook in hooks()]
    header = [
        "# Plugin hook reference",
        "",
        "<!-- Generated from core/hookspecs.py by `python -m polyadapt.hookdocs > docs/plugin_hooks.md`;",
        "     do not edit by hand: tests/test_plugin_docs.py fails when this file is stale. -->",
        "",
        f"Plugin API version **{PLUGIN_API_VERSION}**. A plugin states the range it supports in its",
        "entry module, `POLYADAPT_API = \">=1,<2\"`; `polyadapt plugins` shows a plugin outside",
        "its range as *broken*, with the reason, and loads the others. Implement a hook with",
        "`from polyadapt.hookspecs import hookimpl` and a function of the hook's name; it may take",
        "fewer arguments than the spec names. A step-by-step guide: `docs/plugin_tutorial.md`.",
        "",
        blocks_to_markdown(inspect.getdoc(hookspecs) or ""),
        "",
        "| hook | called on | answers |",
        "| --- | --- | --- |",
    ]
    for doc in parsed:
        called_on = "the task's plugin" if doc.firstresult else "every plugin"
        answers = "first non-None" if doc.firstresult else "all, gathered"
        header.append(f"| [`{doc.name}`](#{doc.name}) | {called_on} | {answers} |")
    body = [render_hook(doc) for doc in parsed]
    records = ["## Records", "",
               "The typed records hooks receive and return (`polyadapt.types` imports nothing heavy).", ""]
    records += [render_record(module, name) for module, name in RECORDS]
    return "\n".join(header) + "\n\n" + "\n".join(body) + "\n" + "\n".join(records).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":  # pragma: no cover
    main()
