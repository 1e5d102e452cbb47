"""polyadapt-keywords: an example third-party polyadapt plugin.

It adds a governance scanner (employee ids such as EMP-123456) and a tiny task,
``domain-keywords``, that learns which words a domain uses. polyadapt imports this module
whenever it starts, so it imports nothing heavy: torch is imported inside the hooks.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl
from polyadapt.types import Task

from polyadapt_keywords.scanner import EmployeeIdScanner

#: The plugin API versions this plugin works with; polyadapt checks it when it loads.
POLYADAPT_API = ">=1,<2"


@hookimpl
def polyadapt_tasks():
    """The task this plugin offers: runs whose config says ``task: domain-keywords``."""
    return [Task(name="domain-keywords", modality="text", default_base="uniform",
                 description="Learn a domain's word distribution and its keywords (a tiny example)")]


@hookimpl
def polyadapt_scanners():
    """Employee ids join the built-in PII scanners, in every run and at serving."""
    return [EmployeeIdScanner()]


@hookimpl
def polyadapt_adapt(run):
    """Learn the word distribution of the run's admitted training data."""
    from polyadapt_keywords.model import adapt

    return adapt(run)


@hookimpl
def polyadapt_evaluate(run, adapter):
    """Held-out perplexity of the uniform base against the learnt distribution."""
    from polyadapt_keywords.model import evaluate

    return evaluate(run, adapter)
