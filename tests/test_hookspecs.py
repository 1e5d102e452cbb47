"""Every hook is documented the same way: arguments, return, call semantics, an example;
the run hooks are answered by the core and wrapped by plugins."""

from __future__ import annotations

import inspect

import pytest

from polyadapt import hookspecs

HOOKS = [obj for name, obj in vars(hookspecs).items() if name.startswith("polyadapt_") and callable(obj)]


def test_hook_names_are_prefixed_and_known():
    assert {hook.__name__ for hook in HOOKS} == {
        "polyadapt_tasks",
        "polyadapt_adapt",
        "polyadapt_evaluate",
        "polyadapt_serve",
        "polyadapt_scanners",
        "polyadapt_run_event",
        "polyadapt_routes",
    }


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_hook_docstring_documents_every_part(hook):
    doc = inspect.getdoc(hook)
    assert doc, f"{hook.__name__} has no docstring"
    for parameter in inspect.signature(hook).parameters:
        assert f":param {parameter}:" in doc, f"{hook.__name__} does not document {parameter}"
    assert ":returns:" in doc
    assert "Call semantics:" in doc
    assert "Example::" in doc
    assert "Added in plugin API" in doc


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_dispatched_hooks_are_firstresult(hook):
    """adapt, evaluate and serve answer once; registration and cross-cutting hooks gather all."""
    opts = getattr(hook, "polyadapt_spec")
    dispatched = {"polyadapt_adapt", "polyadapt_evaluate", "polyadapt_serve"}
    assert opts["firstresult"] is (hook.__name__ in dispatched)


def test_the_core_answers_the_run_hooks_last():
    """The core's adapt, evaluate and serve are trylast: every plugin's wrappers run around
    them, and a plugin's own answer comes first."""
    from polyadapt import builtin_hooks

    for name in ("polyadapt_adapt", "polyadapt_evaluate", "polyadapt_serve"):
        assert getattr(builtin_hooks, name).polyadapt_impl["trylast"] is True
