"""The plugin documentation stays true: the hook reference is generated from the hook
specs and complete, and the tutorial's code is the example plugin's code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from polyadapt.cli import app
from polyadapt.hookdocs import HookDocError, hooks, parse_hook, render
from polyadapt.plugins import check_api_compatibility
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "plugin_hooks.md"
TUTORIAL = ROOT / "docs" / "plugin_tutorial.md"
EXAMPLE = ROOT / "examples" / "plugins" / "keywords"


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


FULL = '''Do the thing.

    Called by the core when it needs the thing.

    :param run: the run.
    :returns: the thing.

    Call semantics: ``firstresult``; dispatched.

    Example::

        @hookimpl
        def polyadapt_thing(run):
            return 1

    Added in plugin API 1.0.
    '''

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
    shown = {"pyproject.toml", "polyadapt_keywords/__init__.py", "polyadapt_keywords/scanner.py",
             "polyadapt_keywords/model.py", "demo/policy.yaml", "demo/run.yaml", "tests/test_keywords.py"}
    assert set(blocks) == shown
    source = {str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*") if p.is_file()
              and p.suffix in {".py", ".toml", ".yaml"} and "__pycache__" not in p.parts}
    assert source <= shown, f"files of the example plugin the tutorial does not show: {source - shown}"
    for name, parts in blocks.items():
        # a file shown in several steps is its blocks in page order, split between top-level definitions
        assert "\n\n\n".join(parts) == (EXAMPLE / name).read_text().rstrip("\n"), (
            f"docs/plugin_tutorial.md no longer shows examples/plugins/keywords/{name} as it is"
        )


def test_tutorial_quotes_the_real_messages():
    text = TUTORIAL.read_text()
    assert check_api_compatibility("keywords", ">=2,<3") in text
    assert "no installed plugin offers task\n'domain-keywords'" in text or \
        "no installed plugin offers task 'domain-keywords'" in text
    for command in ("polyadapt plugin new", "polyadapt plugins install", "polyadapt plugins uninstall",
                    "polyadapt adapt examples/plugins/keywords/demo/run.yaml", "python -m pytest"):
        assert command in text
