"""One run end to end: config → run folder → governed data → adapt → registry → evaluate.

The runner knows no model family: it validates, makes the run folder, opens the data gate
(governance and manifests), dispatches the hooks to the plugin that owns the task, stamps
and registers the adapter, and records it all in the lineage store.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt import __version__, distributed
from polyadapt.config import RunConfig, parse_config, resolve_option_paths
from polyadapt.errors import ConfigError, GovernanceError, PluginError, PolyadaptError
from polyadapt.fileio import create_exclusive_text, is_leftover, read_json_file, remove_leftovers
from polyadapt.gate import govern_config, open_gate, policy_and_redactor
from polyadapt.lineage.environment import capture_environment
from polyadapt.plugins import PluginManager
from polyadapt.task import Task
from polyadapt.trackers import open_trackers
from polyadapt.tracking import RunTracker, base_model_record
from polyadapt.types import AdapterArtifact, EvalReport, Run
from polyadapt.yamlfile import read_text

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from pydantic import BaseModel

    from polyadapt.gate import DataGate
    from polyadapt.lineage.store import LineageStore

    #: Where a run's progress messages go (the CLI passes its console's print).
    Notify = Callable[[str], None]

RUN_RECORD = "run.json"
CONFIG_FILE = "config.yaml"


@functools.cache
def strict_options_model(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with unknown keys rejected, whatever the plugin set (a typo must not pass).

    Made once per options model: every run and ``load_run`` validates against the same class.
    """
    if model.model_config.get("extra") == "forbid":
        return model
    return type(
        model.__name__,
        (model,),
        {
            "model_config": {**model.model_config, "extra": "forbid"},
            "__doc__": model.__doc__,
            "__module__": model.__module__,
        },
    )


def _validate_task_options(pm: PluginManager, config: RunConfig) -> tuple[Task, BaseModel | None]:
    """The task and its validated options (every default filled in; None without a model).

    Errors name the config file, the line and the field (``task_options.x``); an unknown
    key gets the closest valid name. Paths in the options (fields the options model types
    ``Path``) are made absolute in ``config.task_options`` too: ``~`` expanded, relative
    ones resolved against the config file's folder (the working directory when the config
    came from no file), so the run folder's ``config.yaml`` works from any folder.
    """
    task = pm.task(config.task)
    if task.options_model is None:
        if config.task_options:
            raise ConfigError(f"{config.source}: task {task.name!r} takes no task_options; remove that block")
        return task, None
    model = strict_options_model(task.options_model)
    what = f"task_options for task {task.name!r}"
    options = config.validate_section(model, "task_options", what=what)
    resolved = resolve_option_paths(options, config.task_options, config.base_dir or Path.cwd())
    if resolved != config.task_options:
        config.task_options = resolved
        options = config.validate_section(model, "task_options", what=what)
    return task, options


def _new_run_id(config: RunConfig) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return config.output.name or f"{config.task}-{stamp}-{config.hash()[:8]}"


def _find_resumable(config: RunConfig) -> Path:
    """The newest unfinished run of this very config in the output folder."""
    root = Path(config.output.dir)
    candidates = []
    if root.is_dir():
        # a named run resumes in its own folder; the hash leaves the name out
        pattern = f"{config.output.name}/{RUN_RECORD}" if config.output.name else f"*/{RUN_RECORD}"
        for record_path in root.glob(pattern):
            try:
                record = json.loads(record_path.read_bytes())
            except (OSError, ValueError):  # damaged: not a run this config can resume
                continue
            if record.get("config_hash") == config.hash() and record.get("status") != "completed":
                candidates.append((record.get("started", ""), record_path.parent))
    if not candidates:
        raise PolyadaptError(f"--resume: no unfinished run of this config in {root}; start it without --resume")
    return sorted(candidates)[-1][1]


def _make_run_dir(config: RunConfig, resume: bool) -> Path:
    if resume:
        run_dir = _find_resumable(config)
        for folder in (run_dir, run_dir / "checkpoints"):
            remove_leftovers(folder)  # what a killed process was writing when it died
        return run_dir
    root = Path(config.output.dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"output.dir {root} is a file; point output.dir at a folder (it is created if missing)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output.dir {root}: cannot create the folder ({exc.strerror})") from None
    name = _new_run_id(config)
    # identical configs started in the same second get the same automatic name: the first
    # claims it (config.yaml created exclusively), the others take name-2, name-3, ...
    for attempt in range(1, 1000):
        run_dir = root / (name if attempt == 1 else f"{name}-{attempt}")
        run_dir.mkdir(exist_ok=True)
        if not _holds_run(run_dir) and create_exclusive_text(run_dir / CONFIG_FILE, config.to_yaml()):
            return run_dir
        if config.output.name:
            raise PolyadaptError(
                f"{run_dir} already holds a run; choose another output.name, or pass --resume to continue it"
            )
    raise PolyadaptError(f"{root}: could not find a free run folder name for {name}")


def _holds_run(run_dir: Path) -> bool:
    """True when ``run_dir`` has anything in it but what interrupted writes leave."""
    return any(not is_leftover(p.name) for p in run_dir.iterdir())


class RunRecord:
    """``run.json`` in the run folder: status, timings, environment and results."""

    def __init__(self, run: Run, data: dict[str, Any] | None = None):
        self.run = run
        self.data = data or {
            "run_id": run.id,
            "task": run.task.name,
            "plugin": run.task.plugin,
            "config_hash": run.config.hash(),
            "seed": run.config.training.seed,
            "base_model": run.config.base_model.id,
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
            "status": "running",
        }

    def update(self, **fields: object) -> None:
        self.data.update(fields)
        self.run.write_json(RUN_RECORD, self.data)


def prepare_run(pm: PluginManager, config: RunConfig, *, resume: bool = False, notify: Notify | None = None) -> Run:
    """Make (or, with ``resume``, find) the run folder, write the resolved config, open the gate."""
    task, options = _validate_task_options(pm, config)
    policy, redactor = policy_and_redactor(pm, config)
    config = govern_config(config, redactor)
    # Under `accelerate launch` the main process picks the folder and the others follow.
    outcome: tuple[str, str] = ("", "")
    if distributed.is_main_process():
        try:
            outcome = ("ok", str(_make_run_dir(config, resume)))
        except PolyadaptError as exc:
            outcome = ("error", str(exc))
    status, value = distributed.broadcast_from_main(outcome)
    if status == "error":
        raise PolyadaptError(value)
    run_dir = Path(value)
    run = Run(
        id=run_dir.name,
        config=config,
        task=task,
        dir=run_dir.resolve(),
        resume=resume,
        task_options=options,
        notify=notify,
    )
    run.gate = open_gate(run, policy, redactor)
    return run


def adapt(
    pm: PluginManager,
    config: RunConfig,
    *,
    resume: bool = False,
    notify: Notify | None = None,
    store: LineageStore | None = None,
) -> tuple[Run, AdapterArtifact, EvalReport | None]:
    """Run ``polyadapt adapt``: govern the data, train, register and evaluate the adapter.

    ``notify`` receives progress messages for the user (the CLI passes its console);
    ``store`` is the lineage store (default: the one ``$POLYADAPT_DB_URL`` or the state
    folder names).
    """
    run = prepare_run(pm, config, resume=resume, notify=notify)
    run.say(f"run folder: {run.dir}")
    tracker = RunTracker(pm, run, store)
    try:
        tracker.check_new()
        run.trackers = open_trackers(run)
    except PolyadaptError:
        _discard_fresh_folder(run)
        raise
    _gate(run).on_manifest = tracker.dataset_admitted
    if run.trackers is not None:
        run.trackers.watch_datasets(_gate(run))
    record = RunRecord(run, _existing_record(run) if resume else None)
    environment = capture_environment(pm.loaded_plugins())
    base_model = base_model_record(config)
    record.update(status="running", resumed=resume, environment=environment, base_model_record=base_model)
    if run.trackers is not None:
        record.update(tracking=run.trackers.describe())
    tracker.started(environment, base_model)
    _record_index(run, record, tracker)
    adapter_output: dict[str, Any] | None = None
    try:
        # Seeded before the plugin builds anything: adapter initialisation draws from the
        # RNG too, and the same config must give the same adapter.
        from accelerate.utils import set_seed

        set_seed(config.training.seed)
        adapter = pm.dispatch("polyadapt_adapt", run.task, run=run)
        if "train" not in _gate(run).manifests:
            raise PluginError(
                f"plugin {run.task.plugin!r} trained without passing its training data through "
                "run.admit(dataset, role='train'); no data may reach a model ungoverned"
            )
        distributed.wait_for_everyone()
        if not distributed.is_main_process():  # the other processes helped train; done
            return run, adapter, None
        run.write_json("adapter.json", adapter.to_dict())
        adapter_output = _register(run, adapter, tracker)
        record.update(
            status="trained", adapter=adapter.to_dict(), provenance=adapter_output, governance=_gate(run).summaries
        )
        write_model_card(run)
        report = evaluate(pm, run, adapter, tracker=tracker) if config.evaluation.enabled else None
    except BaseException as exc:
        from polyadapt.interrupts import stop_requested

        # a signal's stop may surface as another error (a peer process gone mid-collective)
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) or stop_requested() else "failed"
        if isinstance(exc, GovernanceError):
            status = "refused"
        error = f"{type(exc).__name__}: {exc}"
        record.update(status=status, error=error)
        tracker.finished(status, error=error)
        if run.trackers is not None:
            run.trackers.finish(status)
        raise
    # the lineage store first: a run killed between the two is still unfinished in run.json,
    # so --resume finds it and records it again, instead of a store left saying "running"
    tracker.finished("completed", adapter=adapter_output)
    record.update(status="completed", finished=_dt.datetime.now().isoformat(timespec="seconds"))
    if run.trackers is not None:
        run.trackers.finish("completed")
    return run, adapter, report


def _record_index(run: Run, record: RunRecord, tracker: RunTracker) -> None:
    """The index ``retrieval:`` names, by root hash, in run.json and lineage (polyadapt.retrieval.usage)."""
    from polyadapt.retrieval.usage import RUN_ROLE, describe, run_reference

    reference = run_reference(run.config)
    if reference is not None:
        record.update(retrieval=reference)
        tracker.index_used(RUN_ROLE, reference)
        run.say(describe(reference))


def _gate(run: Run) -> DataGate:
    """The data gate :func:`prepare_run` (or :func:`load_run`) opened for ``run``."""
    assert run.gate is not None, "runs are made by prepare_run or load_run, which open the gate"
    return run.gate


def _discard_fresh_folder(run: Run) -> None:
    """Remove the folder :func:`prepare_run` just made (it holds only config.yaml)."""
    if distributed.is_main_process() and {p.name for p in run.dir.iterdir()} <= {CONFIG_FILE}:
        (run.dir / CONFIG_FILE).unlink(missing_ok=True)
        run.dir.rmdir()


def registry_name(run: Run) -> str:
    """The adapter's name in the registry: ``output.adapter_name``, else the task name."""
    return run.config.output.adapter_name or run.task.name


def _register(run: Run, adapter: AdapterArtifact, tracker: RunTracker) -> dict[str, Any]:
    """Stamp the adapter with its provenance and file it in the registry as a candidate."""
    from polyadapt.lineage.provenance import stamp_adapter, weights_hash

    train_root = _gate(run).manifests["train"]["root_hash"]
    stamp_adapter(
        adapter.path,
        run_id=run.id,
        dataset_root=train_root,
        extra={
            "polyadapt_version": __version__,
            "task": run.task.name,
            "task_description": run.task.description,
            "library_name": run.task.library_name,
            "base_model": run.config.base_model.display_name(),
            "base_model_id": run.config.base_model.id,
        },
        # the base as the user named it: a library's own record may be a private cache folder
        base_reference=run.config.base_model.id,
    )
    digest = weights_hash(adapter.path)
    name, base = registry_name(run), run.config.base_model.display_name()
    version = tracker.adapter_saved(name=name, base_model=base, weights_hash=digest)
    assert version is not None  # only the main process registers, and its tracker records
    run.say(f"registry: {base}:{name} version {version.version} ({version.status})")
    return {
        "name": name,
        "base_model": base,
        "version": version.version,
        "weights_hash": digest,
        "path": str(adapter.path),
        "dataset_root": train_root,
    }


def reproduce(
    pm: PluginManager, run_dir: Path | str, *, notify: Notify | None = None, store: LineageStore | None = None
) -> dict[str, Any]:
    """Run a finished run again from its record and compare the adapters' weights hashes.

    The resolved config (``config.yaml``, seed included) trains again into a sibling folder
    ``<run>-repro-<time>``. On CPU with the same versions, the adapter is bit-identical.

    :returns: ``{"original", "reproduction", "original_hash", "reproduced_hash", "identical",
        "data_identical"}``.
    """
    original, original_adapter = load_run(pm, run_dir)
    provenance = _existing_record(original) or {}
    original_hash = (provenance.get("provenance") or {}).get("weights_hash")
    if not original_hash:
        from polyadapt.lineage.provenance import weights_hash

        original_hash = weights_hash(original_adapter.path)
    config = original.config.model_copy(deep=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    config.output.dir = original.dir.parent
    config.output.name = f"{original.id}-repro-{stamp}"
    run, _, _ = adapt(pm, config, notify=notify, store=store)
    record = _existing_record(run) or {}
    reproduced_hash = record["provenance"]["weights_hash"]
    original_root = (provenance.get("provenance") or {}).get("dataset_root")
    outcome = {
        "original": original.id,
        "reproduction": run.id,
        "original_hash": original_hash,
        "reproduced_hash": reproduced_hash,
        "identical": original_hash == reproduced_hash,
        "data_identical": original_root == record["provenance"]["dataset_root"],
    }
    RunRecord(run, record).update(reproduces=outcome)
    return outcome


def _existing_record(run: Run) -> dict[str, Any] | None:
    path = run.dir / RUN_RECORD
    return read_json_file(path, "run record") if path.is_file() else None


def evaluate(pm: PluginManager, run: Run, adapter: AdapterArtifact, *, tracker: RunTracker | None = None) -> EvalReport:
    """Evaluate base against adapted for ``run``, write ``metrics.json``, record the metrics.

    Generated samples pass the run's policy before they are stored or shown.
    """
    from polyadapt.retrieval.usage import QA_ROLE, evaluation_reference, run_reference

    run.say("evaluating base and adapted...")
    before = run_reference(run.config)
    report = pm.dispatch("polyadapt_evaluate", run.task, run=run, adapter=adapter)
    report.samples = [
        {key: run.redact_text(value) if isinstance(value, str) else value for key, value in sample.items()}
        for sample in report.samples
    ]
    searched = evaluation_reference(before, run_reference(run.config) if before else None, report.rows)
    run.write_json("metrics.json", report.to_dict() | ({"retrieval": searched} if searched else {}))
    tracker = tracker or RunTracker(pm, run)
    tracker.evaluated(report.to_dict()["metrics"])
    tracker.index_used(QA_ROLE, searched)
    if run.trackers is not None:
        run.trackers.log_evaluation(report)
    _preview_gate(run, report)
    write_model_card(run)
    return report


def write_model_card(run: Run) -> None:
    """(Re)write the adapter's model card from the run folder (main process only)."""
    from polyadapt.lineage.card import write_card

    if distributed.is_main_process() and run.adapter_dir.is_dir():
        write_card(run.dir, run.adapter_dir)


def _preview_gate(run: Run, report: EvalReport) -> None:
    """Say whether ``polyadapt adapters promote`` would pass the run's evaluation, and warn
    about gated metrics that did not move (the gate itself runs at promotion)."""
    from polyadapt.lineage.metricgate import gate_of_run, verdict_lines
    from polyadapt.lineage.registry import check_promotion

    config_gate = run.config.gate.model_dump() if run.config.gate is not None else None
    task_gate = run.task.run_gate(getattr(run.config, "task_options", None))
    metric_gate, source = gate_of_run(config_gate, task_gate, run.task.name)
    result = check_promotion(report, _gate(run).policy.promotion, metric_gate)
    task_part = f" and {source}: {metric_gate.describe()}" if metric_gate else ""
    run.say(f"gate: policy {_gate(run).policy.name!r}{task_part}")
    for line in verdict_lines(result.passed, result.failures(), result.warnings):
        run.say(line)


def load_run(pm: PluginManager, run_dir: Path | str, notify: Notify | None = None) -> tuple[Run, AdapterArtifact]:
    """Re-open a finished run folder: its resolved config and its adapter."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise PolyadaptError(f"{run_dir}: not a run folder (no {CONFIG_FILE}); pass a folder under runs/")
    config = parse_config(read_text(config_path, "run config"), str(config_path))
    task, options = _validate_task_options(pm, config)
    run = Run(id=run_dir.name, config=config, task=task, dir=run_dir.resolve(), task_options=options, notify=notify)
    run.gate = open_gate(run, *policy_and_redactor(pm, config))
    adapter_record = run_dir / "adapter.json"
    if not adapter_record.is_file() or not run.adapter_dir.is_dir():
        raise PolyadaptError(f"{run_dir}: the run has no adapter yet; finish it with `polyadapt adapt --resume`")
    data = read_json_file(adapter_record, "adapter record")
    data["path"] = run.adapter_dir  # not the recorded path: the folder may have moved
    return run, AdapterArtifact(**data)
