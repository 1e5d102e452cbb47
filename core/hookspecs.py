"""The hooks of polyadapt plugin API 2.0.

A plugin is a module (or object) registered under the ``polyadapt`` entry-point group whose
functions carry the :data:`hookimpl` marker and the names below. Most plugins implement one
hook, ``polyadapt_tasks``, returning :class:`polyadapt.task.Task` objects: the core runs
every step of a run and asks the task only what its modality knows. For one run
(``polyadapt adapt CONFIG``) the core calls::

    polyadapt_tasks()                 # at start-up: which tasks exist and who owns them
    polyadapt_scanners()              # extra governance scanners, before data is loaded
    polyadapt_run_event(event)        # START
    polyadapt_adapt(run)              # the core trains run.task's adapter
    polyadapt_evaluate(run, adapter)  # the core compares base and adapted with run.task
    polyadapt_run_event(event)        # COMPLETE or FAIL

and for serving (``polyadapt serve``)::

    polyadapt_tasks()
    polyadapt_serve(spec)             # the core loads spec.task's servable
    polyadapt_routes()                # HTTP endpoints plugins add besides their tasks' own

``adapt``, ``evaluate`` and ``serve`` are ``firstresult`` hooks answered by the core
(``trylast``). Plugins wrap them (``@hookimpl(wrapper=True)``) to observe or change every
call: the wrappers of every plugin run around every call. A plugin may also answer one
itself, returning None for the calls it leaves to the core.

Hook names are prefixed ``polyadapt_``; an implementation may take fewer arguments than
the spec names (pluggy passes only those it asks for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.scanners import Scanner
    from polyadapt.serving.routes import Route
    from polyadapt.task import Task
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec

PROJECT_NAME = "polyadapt"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate a plugin's hook functions with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------


@hookspec
def polyadapt_tasks() -> list[Task]:  # type: ignore[empty-body]  # a spec: pluggy never calls its body
    """Declare the tasks this plugin offers.

    Called once on every plugin when the plugin manager starts. Must be cheap: return
    objects only, import nothing heavy (a task imports torch inside its methods).

    :returns: a list of :class:`polyadapt.task.Task` instances (subclasses that set
        ``name`` and implement ``load_base``, ``training_job``, ``evaluate`` and, to be
        served, ``servable``). Task names are global: two plugins declaring the same name
        is reported as a conflict and the later one loses.

    Call semantics: called on all plugins; the results are concatenated.

    Example::

        class SentimentTask(Task):
            name = "sentiment"
            options_model = SentimentOptions
            def load_base(self, run): ...
            def training_job(self, run, base, model, data): ...
            def evaluate(self, run, adapter, data): ...

        @hookimpl
        def polyadapt_tasks():
            return [SentimentTask()]

    Added in plugin API 1.0; returns Task objects with methods since 2.0.
    """


@hookspec
def polyadapt_routes() -> list[Route]:  # type: ignore[empty-body]  # a spec: pluggy never calls its body
    """Add HTTP endpoints to ``polyadapt serve`` that belong to no single task.

    Called once per ``polyadapt serve`` on every plugin. A task's own endpoints come from
    :meth:`polyadapt.task.Task.routes` and are mounted when a base of that task is served;
    this hook is for endpoints of the plugin as a whole (a status page, a cross-task
    search). Each route is mounted behind the server's body validation, OpenAI-shaped
    errors, serving policy and micro-batching (see :mod:`polyadapt.serving.routes`).

    :returns: a list of :class:`polyadapt.serving.routes.Route` records.

    Call semantics: called on all plugins; the results are concatenated. Two different
    routes on the same method and path stop the server's start with an error naming both.

    Example::

        @hookimpl
        def polyadapt_routes():
            return [Route("/v1/glossary", glossary_handler, body=GlossaryBody)]

    Added in plugin API 2.0.
    """


# ---------------------------------------------------------------------------------------
# Run lifecycle
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def polyadapt_adapt(run: Run) -> AdapterArtifact | None:
    """Train a LoRA adapter for ``run`` and save it to ``run.adapter_dir``.

    Called by ``polyadapt adapt`` after the config is validated and the run folder made.
    The core answers it (:func:`polyadapt.steps.train_adapter`): it reads the data through
    ``run.task.load_run_data`` (every set through governance and lineage), writes
    ``data_summary.json`` and ``quarantine.jsonl``, loads the base
    (``run.task.load_base``), attaches LoRA, trains ``run.task.training_job`` with the
    shared trainer (checkpoints, ``--resume``) and saves ``run.task.save_adapter``'s files
    atomically. Wrap it to observe or change that; answer it only to replace the run.

    :param run: the validated config and options, the task, the run folder, the data gate.
    :returns: the :class:`polyadapt.types.AdapterArtifact` describing what was saved.

    Call semantics: ``firstresult``; the core's implementation is ``trylast``, so hook
    wrappers of every plugin run around it.

    Example::

        @hookimpl(wrapper=True)
        def polyadapt_adapt(run):
            started = time.time()
            artifact = yield
            notify_team(f"{run.id} trained in {time.time() - started:.0f} s")
            return artifact

    Added in plugin API 1.0; answered by the core since 2.0.
    """


@hookspec(firstresult=True)
def polyadapt_evaluate(run: Run, adapter: AdapterArtifact) -> EvalReport | None:
    """Compare the base model with base + ``adapter`` on the run's held-out data.

    Called by ``polyadapt adapt`` after ``polyadapt_adapt`` and by ``polyadapt evaluate
    RUN``. The core answers it with ``run.task.evaluate(run, adapter, data)`` on the run's
    governed data. The report holds one :class:`polyadapt.types.MetricRow` per set and
    metric with the base and adapted values and a ``role`` (``domain``, ``general``: what
    the registry's promotion gate checks), plus a few example outputs, which the core
    passes through the policy, writes to ``run.metrics_path`` and prints.

    :param run: the run whose adapter is evaluated.
    :param adapter: the artifact ``polyadapt_adapt`` returned (or one re-read from disk).
    :returns: the :class:`polyadapt.types.EvalReport`.

    Call semantics: ``firstresult``; the core's implementation is ``trylast``.

    Example::

        @hookimpl(wrapper=True)
        def polyadapt_evaluate(run, adapter):
            report = yield
            dashboard.publish(run.id, [row.metric for row in report.rows])
            return report

    Added in plugin API 1.0; answered by the core since 2.0.
    """


@hookspec(firstresult=True)
def polyadapt_serve(spec: ServeSpec) -> Servable | None:
    """Load ``spec.base_model`` once and return a :class:`polyadapt.types.Servable`.

    Called by ``polyadapt serve`` for each base model it must host. The core answers it
    with ``spec.task.servable(spec)``: an object that keeps the base in memory, loads each
    adapter of ``spec.adapters`` on first use, and answers batches of requests in which
    each request may name a different adapter.

    :param spec: the task, the base model, the name clients use for it, and the adapters.
    :returns: an object implementing the :class:`polyadapt.types.Servable` protocol.

    Call semantics: ``firstresult``; the core's implementation is ``trylast``.

    Example::

        @hookimpl(wrapper=True)
        def polyadapt_serve(spec):
            servable = yield
            log.info("serving %s with %d adapters", spec.base_name, len(spec.adapters))
            return servable

    Added in plugin API 1.0; answered by the core since 2.0.
    """


# ---------------------------------------------------------------------------------------
# Cross-cutting: called on every plugin
# ---------------------------------------------------------------------------------------


@hookspec
def polyadapt_scanners() -> list[Scanner]:  # type: ignore[empty-body]  # a spec: pluggy never calls its body
    """Add governance scanners that look for sensitive content in text.

    Called once per run (and once per ``polyadapt serve``) on every plugin. The scanners
    returned join the built-in ones (emails, phone numbers, payment cards, IBANs, national
    ids, IP addresses, secrets) and run on every text field of every record a modality
    declares, before tokenisation, and on prompts and outputs at serving. What happens to
    a finding is the policy's choice: ``pii.<type>`` in the policy file, else its
    ``default_action``.

    :returns: a list of objects with ``name`` (str), ``types`` (the finding types they
        report, e.g. ``("person",)``) and ``scan(text) -> list[Finding]``; see
        :class:`polyadapt.governance.scanners.Scanner`.

    Call semantics: called on all plugins; the results are concatenated. A plugin whose
    hook raises stops the run with an error naming it (no data may pass unscanned).

    Example::

        @hookimpl
        def polyadapt_scanners():
            return [EmployeeIdScanner()]   # finds "EMP-123456" as type "employee_id"

    Added in plugin API 1.0.
    """


@hookspec
def polyadapt_run_event(event: dict) -> None:
    """Observe a run's lineage events (an experiment tracker, a catalogue, a chat bot).

    Called on every plugin when a run starts, completes or fails, with the same OpenLineage
    RunEvent that polyadapt writes to ``lineage.openlineage``: ``eventType`` (``START``,
    ``COMPLETE`` or ``FAIL``), ``eventTime``, ``run.runId``, ``job.name``, ``inputs`` (the
    dataset manifests' root hashes) and ``outputs`` (the adapter and its weights hash).
    Events carry no raw data.

    :param event: the RunEvent as a JSON-ready dict; do not modify it.
    :returns: nothing.

    Call semantics: called on all plugins; return values are ignored. An exception in a
    listener is reported as a warning and never fails the run.

    Example::

        @hookimpl
        def polyadapt_run_event(event):
            if event["eventType"] == "COMPLETE":
                mlflow.log_dict(event, "lineage.json")

    Added in plugin API 1.0.
    """
