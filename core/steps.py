"""The steps of a run that are the same for every task, in the order the runner takes them.

:func:`train_adapter` is what ``polyadapt_adapt`` does unless a plugin overrides it: read
and govern the data, write the data files, load the base, attach LoRA, train with the
shared trainer, save the adapter atomically. :func:`evaluate_adapter` is
``polyadapt_evaluate``'s default; :func:`load_servable` is ``polyadapt_serve``'s. Each asks
the run's :class:`polyadapt.task.Task` only for what its modality knows.
"""

from __future__ import annotations

from polyadapt.distributed import is_main_process
from polyadapt.errors import ConfigError, PluginError
from polyadapt.modalities.records import RunData
from polyadapt.types import AdapterArtifact, EvalReport, Run, Servable, ServeSpec


def run_data(run: Run) -> RunData:
    """The run's governed data, read once per run (adapt and evaluate share it)."""
    if run.data is None:
        data = run.task.load_run_data(run)
        if not isinstance(data, RunData):
            raise PluginError(
                f"task {run.task.name!r}: load_run_data returned {type(data).__name__}, "
                "not a polyadapt.modalities.records.RunData"
            )
        run.data = data
    return run.data


def write_input_profile(run: Run, data: RunData) -> None:
    """Write ``input_profile.json``: the training inputs' statistics that ``polyadapt monitor``
    compares served traffic with (see :meth:`polyadapt.task.Task.input_sample`)."""
    from polyadapt.monitoring.profile import InputSample, training_profile, write_profile

    if not is_main_process():
        return
    samples = [run.task.input_sample(record) for record in data.train]
    wrong = next((s for s in samples if s is not None and not isinstance(s, InputSample)), None)
    if wrong is not None:
        raise PluginError(
            f"task {run.task.name!r}: input_sample returned {type(wrong).__name__}, not an InputSample or None"
        )
    write_profile(run.dir, training_profile(samples, seed=run.config.training.seed))


def train_adapter(run: Run) -> AdapterArtifact:
    """Train and save a LoRA adapter for ``run``: the core's ``polyadapt_adapt``."""
    from polyadapt.fileio import atomic_directory
    from polyadapt.lora import count_parameters
    from polyadapt.rundata import write_data_files
    from polyadapt.training import TrainingJob, train

    task, config = run.task, run.config
    data = run_data(run)
    run.say(f"loading base model {config.base_model.id}")
    base = task.load_base(run)
    check_max_length(run, task.context_length(run, base))
    model = task.attach_lora(run, base)
    job = task.training_job(run, base, model, data)
    if not isinstance(job, TrainingJob):
        raise PluginError(f"task {task.name!r}: training_job returned {type(job).__name__}, not a TrainingJob")
    write_data_files(run, data, job.facts)
    write_input_profile(run, data)
    trainable, total = count_parameters(model)
    run.say(f"LoRA: {trainable:,} trainable of {total:,} parameters; {len(job.train_data)} training examples")
    on_log = run.trackers.log_step if run.trackers is not None else None
    result = train(job, config.training, run.dir, resume=run.resume, on_log=on_log)
    if is_main_process():
        with atomic_directory(run.adapter_dir) as folder:
            task.save_adapter(run, base, model, folder)
    return AdapterArtifact(
        path=run.adapter_dir,
        base_model=config.base_model.id,
        trainable_parameters=trainable,
        total_parameters=total,
        train_metrics=result.to_dict() | {"train_examples": len(job.train_data), **job.facts},
    )


def check_max_length(run: Run, context: int | None) -> None:
    """Refuse ``training.max_length`` above the base's ``context`` (None: the task has no limit)."""
    asked = run.config.training.max_length
    if context is not None and asked > context:
        raise ConfigError(
            f"{run.config.source}: training.max_length is {asked:,} tokens but the base model "
            f"{run.config.base_model.id} reads at most {context:,} positions; set training.max_length "
            f"to {context:,} or less"
        )


def evaluate_adapter(run: Run, adapter: AdapterArtifact) -> EvalReport:
    """Base against adapted on the run's held-out and general data: the core's ``polyadapt_evaluate``."""
    report = run.task.evaluate(run, adapter, run_data(run))
    if not isinstance(report, EvalReport):
        raise PluginError(f"task {run.task.name!r}: evaluate returned {type(report).__name__}, not an EvalReport")
    return report


def load_servable(spec: ServeSpec) -> Servable:
    """The task's loaded base for ``spec``: the core's ``polyadapt_serve``."""
    return spec.task.servable(spec)
