"""One run end to end: config → run folder → adapt → evaluate → results on disk.

The runner knows no model family: it validates, makes the run folder, dispatches the
hooks to the plugin that owns the task, and writes what they return.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from polyadapt import __version__, distributed
from polyadapt.config import RunConfig, parse_config
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.fileio import atomic_write_text
from polyadapt.plugins import PluginManager
from polyadapt.types import AdapterArtifact, EvalReport, Run

RUN_RECORD = "run.json"
CONFIG_FILE = "config.yaml"


def _validate_task_options(pm: PluginManager, config: RunConfig) -> tuple[Any, Any]:
    task = pm.task(config.task)
    options = config.task_options
    if task.options_model is not None:
        from pydantic import ValidationError

        try:
            options = task.options_model.model_validate(config.task_options)
        except ValidationError as exc:
            problems = "; ".join(
                f"task_options.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid task_options for task {task.name!r}: {problems}") from None
    elif config.task_options:
        raise ConfigError(f"task {task.name!r} takes no task_options; remove that block")
    return task, options


def _new_run_id(config: RunConfig) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return config.output.name or f"{config.task}-{stamp}-{config.hash()[:8]}"


def _find_resumable(config: RunConfig) -> Path:
    """The newest unfinished run of this very config in the output folder."""
    root = Path(config.output.dir)
    candidates = []
    if root.is_dir():
        for record_path in root.glob(f"*/{RUN_RECORD}"):
            try:
                record = json.loads(record_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if record.get("config_hash") == config.hash() and record.get("status") != "completed":
                candidates.append((record.get("started", ""), record_path.parent))
    if not candidates:
        raise PolyadaptError(
            f"--resume: no unfinished run of this config in {root}; start it without --resume"
        )
    return sorted(candidates)[-1][1]


def _make_run_dir(config: RunConfig, resume: bool) -> Path:
    if resume:
        return _find_resumable(config)
    run_dir = Path(config.output.dir) / _new_run_id(config)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise PolyadaptError(
            f"{run_dir} already holds a run; choose another output.name, or pass --resume "
            "to continue it"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
    return run_dir


class RunRecord:
    """``run.json`` in the run folder: status, timings, versions and results."""

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
            "versions": {"polyadapt": __version__, "python": sys.version.split()[0]},
            "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        }

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.run.write_json(RUN_RECORD, self.data)


def prepare_run(pm: PluginManager, config: RunConfig, *, resume: bool = False, notify=None) -> Run:
    """Make (or, with ``resume``, find) the run folder and write the resolved config."""
    task, options = _validate_task_options(pm, config)
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
    return Run(id=run_dir.name, config=config, task=task, dir=run_dir.resolve(), resume=resume,
               task_options=options, notify=notify)


def adapt(
    pm: PluginManager, config: RunConfig, *, resume: bool = False, notify=None
) -> tuple[Run, AdapterArtifact, EvalReport | None]:
    """Run ``polyadapt adapt``: train the adapter, then evaluate it unless disabled.

    ``notify`` receives progress messages for the user (the CLI passes its console).
    """
    run = prepare_run(pm, config, resume=resume, notify=notify)
    run.say(f"run folder: {run.dir}")
    record = RunRecord(run, _existing_record(run) if resume else None)
    record.update(status="running", resumed=resume)
    try:
        # Seeded before the plugin builds anything: adapter initialisation draws from the
        # RNG too, and the same config must give the same adapter.
        from accelerate.utils import set_seed

        set_seed(config.training.seed)
        adapter = pm.dispatch("polyadapt_adapt", run.task, run=run)
        distributed.wait_for_everyone()
        if not distributed.is_main_process():  # the other processes helped train; done
            return run, adapter, None
        run.write_json("adapter.json", adapter.to_dict())
        record.update(status="trained", adapter=adapter.to_dict())
        report = evaluate(pm, run, adapter) if config.evaluation.enabled else None
    except BaseException as exc:
        record.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                      error=f"{type(exc).__name__}: {exc}")
        raise
    record.update(status="completed", finished=_dt.datetime.now().isoformat(timespec="seconds"))
    return run, adapter, report


def _existing_record(run: Run) -> dict[str, Any] | None:
    path = run.dir / RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def evaluate(pm: PluginManager, run: Run, adapter: AdapterArtifact) -> EvalReport:
    """Evaluate base against adapted for ``run`` and write ``metrics.json``."""
    run.say("evaluating base and adapted...")
    report = pm.dispatch("polyadapt_evaluate", run.task, run=run, adapter=adapter)
    run.write_json("metrics.json", report.to_dict())
    return report


def load_run(pm: PluginManager, run_dir: Path | str, notify=None) -> tuple[Run, AdapterArtifact]:
    """Re-open a finished run folder: its resolved config and its adapter."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise PolyadaptError(f"{run_dir}: not a run folder (no {CONFIG_FILE}); pass a folder under runs/")
    config = parse_config(config_path.read_text(), str(config_path))
    task, options = _validate_task_options(pm, config)
    run = Run(id=run_dir.name, config=config, task=task, dir=run_dir.resolve(), task_options=options,
              notify=notify)
    adapter_record = run_dir / "adapter.json"
    if not adapter_record.is_file() or not run.adapter_dir.is_dir():
        raise PolyadaptError(f"{run_dir}: the run has no adapter yet; finish it with `polyadapt adapt --resume`")
    data = json.loads(adapter_record.read_text())
    data["path"] = run.adapter_dir  # not the recorded path: the folder may have moved
    return run, AdapterArtifact(**data)
