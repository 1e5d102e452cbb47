"""The core's own implementations of the run hooks, registered before any plugin.

They are ``trylast``: hook wrappers from every plugin run around them, and a plugin that
implements ``polyadapt_adapt`` (or ``evaluate``, ``serve``) itself is asked first and may
take the call by returning something other than None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyadapt.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec

#: The name the core's hooks are registered under; never blocked by POLYADAPT_LOAD_PLUGINS.
NAME = "polyadapt.core"


@hookimpl(trylast=True)
def polyadapt_adapt(run: Run) -> AdapterArtifact:
    """Train the run's task with the shared steps (:func:`polyadapt.steps.train_adapter`)."""
    from polyadapt.steps import train_adapter

    return train_adapter(run)


@hookimpl(trylast=True)
def polyadapt_evaluate(run: Run, adapter: AdapterArtifact) -> EvalReport:
    """Evaluate with the run's task (:func:`polyadapt.steps.evaluate_adapter`)."""
    from polyadapt.steps import evaluate_adapter

    return evaluate_adapter(run, adapter)


@hookimpl(trylast=True)
def polyadapt_serve(spec: ServeSpec) -> Servable:
    """Load the task's servable (:func:`polyadapt.steps.load_servable`)."""
    from polyadapt.steps import load_servable

    return load_servable(spec)
