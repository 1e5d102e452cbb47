"""polyadapt-keywords: an example third-party polyadapt plugin.

It adds a governance scanner (employee ids such as EMP-123456) and a tiny task,
``domain-keywords``, that learns which words a domain uses. polyadapt imports this module
whenever it starts, so it imports nothing heavy: torch is imported inside the task's methods.
"""

from __future__ import annotations

from polyadapt.hookspecs import hookimpl

from polyadapt_keywords.scanner import EmployeeIdScanner
from polyadapt_keywords.task import KeywordsTask

#: The plugin API versions this plugin works with; polyadapt checks it when it loads.
POLYADAPT_API = ">=2,<3"


@hookimpl
def polyadapt_tasks():
    """The task this plugin offers: runs whose config says ``task: domain-keywords``."""
    return [KeywordsTask()]


@hookimpl
def polyadapt_scanners():
    """Employee ids join the built-in PII scanners, in every run and at serving."""
    return [EmployeeIdScanner()]
