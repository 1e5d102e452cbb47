"""The plugin documentation stays true: the reference is generated from the Task class,
the hook specs and the records, and misses none of them; the tutorial's code is the
example plugin's code; the migration guide exists and says what the core says."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyadapt import hookspecs
from polyadapt.cli import app
from polyadapt.hookdocs import RECORDS, HookDocError, hooks, parse_hook, parse_method, render, render_task
from polyadapt.plugins import MIGRATION_GUIDE, check_api_compatibility
from polyadapt.task import DECLARED_FIELDS, Task

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "plugin_hooks.md"
TUTORIAL = ROOT / "docs" / "plugin_tutorial.md"
EXAMPLE = ROOT / "examples" / "plugins" / "keywords"
GUIDE = ROOT / MIGRATION_GUIDE

#: Found here, not through polyadapt.hookdocs: a hook or a method the generator skipped fails.
ALL_HOOKS = sorted(name for name, obj in vars(hookspecs).items() if name.startswith("polyadapt_") and callable(obj))
TASK_METHODS = sorted(name for name, obj in inspect.getmembers(Task, inspect.isfunction) if not name.startswith("_"))


def test_hook_reference_is_current():
    assert REFERENCE.read_text() == render(), (
        "docs/plugin_hooks.md is stale: regenerate it with "
        "`.venv/bin/python -m polyadapt.hookdocs > docs/plugin_hooks.md`"
    )


@pytest.mark.parametrize("hook", hooks(), ids=lambda h: h.__name__)
def test_every_hook_is_documented_in_full(hook):
    doc = parse_hook(hook)  # raises HookDocError naming any missing part
    assert doc.summary and doc.returns and doc.semantics and doc.example and doc.added
    assert any("Called" in block for block in doc.when)
    section = REFERENCE.read_text().split(f"\n## {hook.__name__}\n", 1)[1].split("\n## ", 1)[0]
    assert doc.example in section and f"**Call semantics**: {doc.semantics}" in section


FULL = """Do the thing.

    Called by the core when it needs the thing.

    :param run: the run.
    :returns: the thing.

    Call semantics: ``firstresult``; dispatched.

    Example::

        @hookimpl
        def polyadapt_thing(run):
            return 1

    Added in plugin API 1.0.
    """

PARTS = {
    "Called by the core when it needs the thing.": "when it is called",
    ":param run: the run.": "':param run:'",
    ":returns: the thing.": "':returns:'",
    "Call semantics: ``firstresult``; dispatched.": "'Call semantics:'",
    "Example::": "an 'Example::' block",
    "Added in plugin API 1.0.": "'Added in plugin API X'",
}


def _hook(doc: str):
    def polyadapt_thing(run):
        pass

    polyadapt_thing.__doc__ = doc
    return polyadapt_thing


def test_a_complete_docstring_parses():
    doc = parse_hook(_hook(FULL))
    assert doc.params == {"run": ("", "the run.")} and doc.example.startswith("@hookimpl")


@pytest.mark.parametrize("part", list(PARTS), ids=list(PARTS.values()))
def test_a_hook_lacking_a_part_is_refused(part):
    with pytest.raises(HookDocError, match=re.escape(PARTS[part])):
        parse_hook(_hook(FULL.replace(part, "Some other words.")))


def test_a_documented_argument_the_hook_lacks_is_refused():
    with pytest.raises(HookDocError, match="':param spec:' names no argument"):
        parse_hook(_hook(FULL.replace(":param run: the run.", ":param run: the run.\n    :param spec: a spec.")))


@pytest.mark.parametrize("name", ALL_HOOKS)
def test_every_hook_is_in_the_reference(name):
    assert f"\n## {name}\n" in REFERENCE.read_text(), f"docs/plugin_hooks.md has no section for the hook {name}"


@pytest.mark.parametrize("name", TASK_METHODS)
def test_every_task_method_is_in_the_reference(name):
    text = REFERENCE.read_text()
    assert f"\n### Task.{name}\n" in text, f"docs/plugin_hooks.md has no section for Task.{name}"
    section = text.split(f"\n### Task.{name}\n", 1)[1].split("\n### ", 1)[0]
    method = parse_method(getattr(Task, name))
    assert method.signature in section and method.summary in section
    if method.required:
        assert "No default" in section


def test_the_task_attributes_and_the_records_are_in_the_reference():
    text = REFERENCE.read_text()
    table = text.split("**Class attributes**", 1)[1].split("**Methods**", 1)[0]
    for name in DECLARED_FIELDS:
        assert f"| `{name}` |" in table, f"the Task attribute {name} is not in docs/plugin_hooks.md"
    for _, name in RECORDS:
        assert f"\n### {name}\n" in text
    route = text.split("\n### Route\n", 1)[1].split("\n### ", 1)[0]
    assert "| `handler` |" in route and "| `max_upload_bytes` |" in route


def test_an_undocumented_task_method_is_refused():
    class Sloppy(Task):
        name = "sloppy"

        def load_base(self, run):
            return None

    with pytest.raises(HookDocError, match="Task.load_base: the method has no docstring"):
        render_task(Sloppy)


def test_cli_prints_the_reference():
    result = CliRunner().invoke(app, ["plugin", "hooks"])
    assert result.exit_code == 0 and result.output == render()


# -- the tutorial ---------------------------------------------------------------------------


def tutorial_files() -> dict[str, list[str]]:
    """The tutorial's code blocks marked ``file=PATH``, grouped by file, in page order."""
    blocks: dict[str, list[str]] = {}
    for match in re.finditer(r"^```\w+ file=(\S+)\n(.*?)\n```$", TUTORIAL.read_text(), re.M | re.S):
        blocks.setdefault(match.group(1), []).append(match.group(2))
    return blocks


def test_tutorial_code_is_the_example_plugin():
    blocks = tutorial_files()
    shown = {
        "pyproject.toml",
        "polyadapt_keywords/__init__.py",
        "polyadapt_keywords/scanner.py",
        "polyadapt_keywords/task.py",
        "polyadapt_keywords/model.py",
        "demo/policy.yaml",
        "demo/run.yaml",
        "tests/test_keywords.py",
    }
    assert set(blocks) == shown
    source = {
        str(p.relative_to(EXAMPLE))
        for p in EXAMPLE.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".toml", ".yaml"}
        and "__pycache__" not in p.parts
        and not {"build", "runs"} & set(p.relative_to(EXAMPLE).parts)
    }  # what pip and runs leave
    assert source <= shown, f"files of the example plugin the tutorial does not show: {source - shown}"
    for name, parts in blocks.items():
        # a file shown in several steps is its blocks in page order, split between top-level definitions
        assert "\n\n\n".join(parts) == (EXAMPLE / name).read_text().rstrip("\n"), (
            f"docs/plugin_tutorial.md no longer shows examples/plugins/keywords/{name} as it is"
        )


def test_tutorial_quotes_the_real_messages():
    text = TUTORIAL.read_text()
    assert check_api_compatibility("keywords", ">=2,<3") is None  # what the example declares
    assert check_api_compatibility("keywords", ">=3,<4") in text
    assert check_api_compatibility("keywords", ">=1,<2") in text
    assert (
        "no installed plugin offers task\n'domain-keywords'" in text
        or "no installed plugin offers task 'domain-keywords'" in text
    )
    for command in (
        "polyadapt plugin new",
        "polyadapt plugins install",
        "polyadapt plugins uninstall",
        "polyadapt adapt examples/plugins/keywords/demo/run.yaml",
        "python -m pytest",
    ):
        assert command in text


# -- the migration guide --------------------------------------------------------------------


def test_migration_guide_is_where_the_core_points_and_covers_the_changes():
    text = GUIDE.read_text()
    message = check_api_compatibility("support-chat", ">=1,<2")  # what a 1.x plugin is told
    assert MIGRATION_GUIDE in message and message in text
    for topic in (
        "## What changed",
        "## Before and after",
        "## Checklist",
        'POLYADAPT_API = ">=2,<3"',
        "polyadapt.task",
        "load_base",
        "training_job",
        "save_adapter",
        "evaluate",
        "servable",
        "options_model",
        "Route(",
        "wrapper=True",
        "TranscriptionRequest",
        "ImageRequest",
        "run.admit",
        "atomic_directory",
        "data_summary.json",
    ):
        assert topic in text, topic
    before_after = re.findall(r"^```python\n(.*?)\n```$", text, re.M | re.S)
    for code in before_after:  # every Python block of the guide is valid Python
        compile(code, str(GUIDE), "exec")
