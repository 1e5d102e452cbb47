"""The hooks a polyadapt plugin implements.

A plugin is a module (or object) registered under the ``polyadapt`` entry-point group whose
functions carry the :data:`hookimpl` marker and the names below. The core calls them in
this order for one run (``polyadapt adapt CONFIG``)::

    polyadapt_tasks()                 # at start-up: which tasks exist and who owns them
    polyadapt_adapt(run)              # the owning plugin trains and saves an adapter
    polyadapt_evaluate(run, adapter)  # the owning plugin compares base and adapted

Around the run, on every plugin: ``polyadapt_scanners()`` once before the data is loaded
(extra governance scanners) and ``polyadapt_run_event(event)`` when the run starts,
completes or fails (lineage listeners).

For serving (``polyadapt serve``)::

    polyadapt_tasks()
    polyadapt_serve(spec)             # the owning plugin loads the base, returns a Servable

``adapt``, ``evaluate`` and ``serve`` are *dispatched*: the core calls only the plugin that
declared the run's task (plus any hook wrappers), so an implementation never has to check
whether a run is its own. They are ``firstresult`` hooks: the first non-None answer wins.

Hook names are prefixed ``polyadapt_``; an implementation may take fewer arguments than
the spec names (pluggy passes only those it asks for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.scanners import Scanner
    from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec, Task

PROJECT_NAME = "polyadapt"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate a plugin's hook functions with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------


@hookspec
def polyadapt_tasks() -> list[Task]:
    """Declare the tasks this plugin can adapt, evaluate and serve.

    Called once on every plugin when the plugin manager starts. Must be cheap: return
    records only, import nothing heavy.

    :returns: a list of :class:`polyadapt.types.Task` records. Task names are global: two
        plugins declaring the same name is reported as a conflict and the later one loses.

    Call semantics: called on all plugins; the results are concatenated.

    Example::

        @hookimpl
        def polyadapt_tasks():
            return [Task(name="text-generation", modality="text",
                         description="Causal LM fine-tuning", default_base="gpt2")]

    Added in plugin API 1.0.
    """


# ---------------------------------------------------------------------------------------
# Run lifecycle
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def polyadapt_adapt(run: Run) -> AdapterArtifact | None:
    """Train a LoRA adapter for ``run`` and save it to ``run.adapter_dir``.

    Called by ``polyadapt adapt`` after the config is validated and the run folder made.
    The implementation loads the data and passes every dataset through
    ``run.admit(dataset, role=...)`` (the policy's licence, consent and PII rules, and the
    lineage manifest: only what it returns may reach the model; the runner refuses a run
    whose ``train`` data was not admitted). It loads the base model, hands model and
    examples to the shared trainer (:func:`polyadapt.training.train`) and saves the
    adapter atomically (see :func:`polyadapt.fileio.atomic_directory`) as ``*.safetensors``
    files in a format plain PEFT (or diffusers) loads. When ``run.resume`` is true, the
    trainer continues from the last checkpoint in ``run.checkpoint_dir``.

    :param run: the validated config, the task, the run folder and the data gate.
    :returns: the :class:`polyadapt.types.AdapterArtifact` describing what was saved.

    Call semantics: ``firstresult``; dispatched to the plugin that declared ``run.task``.

    Example::

        @hookimpl
        def polyadapt_adapt(run):
            data = run.admit(load_text_dataset(run.config.data.train), role="train")
            model = attach_lora(load_base(run.config.base_model), run.config.lora)
            job = TrainingJob(model=model, train_data=encode(data.records),
                              collate=collate, loss=summed_loss)
            result = train(job, run.config.training, run.dir, resume=run.resume)
            with atomic_directory(run.adapter_dir) as folder:
                model.save_pretrained(folder, safe_serialization=True)
            return AdapterArtifact(path=run.adapter_dir, base_model=run.config.base_model.id,
                                   train_metrics=result.to_dict())

    Added in plugin API 1.0.
    """


@hookspec(firstresult=True)
def polyadapt_evaluate(run: Run, adapter: AdapterArtifact) -> EvalReport | None:
    """Compare the base model with base + ``adapter`` on the run's held-out data.

    Called by ``polyadapt adapt`` after ``polyadapt_adapt`` and by ``polyadapt evaluate
    RUN``. Evaluation data passes ``run.admit`` like training data. The report holds, for
    each evaluation set (the held-out domain split, a general-capability set for the
    forgetting check, ...), one :class:`polyadapt.types.MetricRow` per metric with the base
    and adapted values and a ``role`` (``domain``, ``general``: what the registry's
    promotion gate checks), plus a few example outputs. The core passes the samples through
    the policy, writes the report to ``run.metrics_path`` and prints it.

    :param run: the run whose adapter is evaluated (its config says which data to use).
    :param adapter: the artifact ``polyadapt_adapt`` returned (or one re-read from disk).
    :returns: the :class:`polyadapt.types.EvalReport`.

    Call semantics: ``firstresult``; dispatched to the plugin that declared ``run.task``.

    Example::

        @hookimpl
        def polyadapt_evaluate(run, adapter):
            heldout = run.admit(load_text_dataset(run.config.data.eval), role="eval")
            base, adapted = perplexity(base_model, heldout), perplexity(adapted_model, heldout)
            return EvalReport(rows=[MetricRow("domain", "perplexity", base, adapted, role="domain")])

    Added in plugin API 1.0.
    """


@hookspec(firstresult=True)
def polyadapt_serve(spec: ServeSpec) -> Servable | None:
    """Load ``spec.base_model`` once and return a :class:`polyadapt.types.Servable`.

    Called by ``polyadapt serve`` for each base model it must host. The servable keeps the
    base in memory, loads each adapter of ``spec.adapters`` on first use (or at once), and
    answers batches of requests in which each request may name a different adapter.

    :param spec: the task, the base model, the name clients use for it, and the adapters.
    :returns: an object implementing the :class:`polyadapt.types.Servable` protocol.

    Call semantics: ``firstresult``; dispatched to the plugin that declared ``spec.task``.

    Example::

        @hookimpl
        def polyadapt_serve(spec):
            return TextServable(spec)

    Added in plugin API 1.0.
    """


# ---------------------------------------------------------------------------------------
# Cross-cutting: called on every plugin
# ---------------------------------------------------------------------------------------


@hookspec
def polyadapt_scanners() -> list[Scanner]:
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
