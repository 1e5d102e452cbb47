"""Experiment trackers: MLflow, TensorBoard and W&B follow a run as it trains.

A run config's ``tracking:`` block names them (``log_with: [mlflow, tensorboard]``). The
runner opens them through accelerate's tracker classes when the run starts (the main
process only), the shared trainer reports each log record to them, and the runner adds the
evaluation table and, for MLflow, the adapter, the run record, the lineage manifests and
the datasets' digests before it closes them with the run's outcome.

This is not the lineage store (:mod:`polyadapt.tracking`): that one is the project's own
record of every run, which the registry gates on; trackers are where people watch runs.

MLflow writes to ``tracking.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else a local SQLite
store in ``tracking.dir`` (default ``<output.dir>/tracking``: ``mlflow.db`` and
``mlartifacts/``); TensorBoard writes event files to ``<tracking.dir>/tensorboard/<run id>``.
A tracker that fails in the middle of a run is dropped with a warning: a tracking server
going down does not cost a training run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from polyadapt import __version__
from polyadapt.distributed import is_main_process
from polyadapt.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from accelerate.tracking import GeneralTracker

    from polyadapt.config import RunConfig
    from polyadapt.gate import DataGate
    from polyadapt.types import EvalReport, Run

#: What each tracker needs installed: (module to import, how to install it).
REQUIREMENTS = {
    "mlflow": ("mlflow", "pip install 'polyadapt[tracking]'"),
    "tensorboard": ("tensorboard", "pip install 'polyadapt[tracking]'"),
    "wandb": ("wandb", "pip install wandb"),
}
#: The run's outcome (``run.json``'s status) as MLflow's run status.
MLFLOW_STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}
#: Files and folders of the run folder that MLflow keeps as artifacts, where they exist.
RUN_ARTIFACTS = ("run.json", "config.yaml", "metrics.json", "data_summary.json", "adapter.json")
RUN_ARTIFACT_FOLDERS = {"adapter": "adapter", "logs": "logs", "manifests": "lineage/manifests"}
#: Step record fields that are not metrics.
_NOT_METRICS = {"step"}


def tracking_dir(config: RunConfig) -> Path:
    """The folder of the local stores: ``tracking.dir``, else ``<output.dir>/tracking``."""
    return Path(config.tracking.dir or Path(config.output.dir) / "tracking").resolve()


def mlflow_uri(config: RunConfig) -> str:
    """Where MLflow records the run: ``tracking.mlflow_uri``, ``$MLFLOW_TRACKING_URI`` or the local
    SQLite store in :func:`tracking_dir`."""
    uri = config.tracking.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{tracking_dir(config) / 'mlflow.db'}"


def experiment_name(run: Run) -> str:
    """The experiment (W&B: project) the run is filed under: ``tracking.experiment`` or the task."""
    return run.config.tracking.experiment or run.task.name


def without_credentials(uri: str) -> str:
    """``uri`` without a ``user:password@`` part, for records and messages."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def flat_params(config: RunConfig) -> dict[str, str | int | float | bool]:
    """The resolved config as flat ``section.field`` parameters (lists and ``None`` as JSON text).

    The ``tracking`` block itself is left out: where a run is watched is not a parameter of it.
    """
    out: dict[str, str | int | float | bool] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (str, int, float, bool)):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value)

    walk("", config.model_dump(mode="json", exclude={"tracking"}))
    return out


def metric_name(*parts: str) -> str:
    """A metric name every tracker accepts: ``/``-joined, characters MLflow refuses as ``_``."""
    return "/".join(re.sub(r"[^\w\-. ]", "_", part) for part in parts)


def evaluation_table(report: EvalReport) -> list[list[Any]]:
    """The evaluation rows as a table: dataset, metric, base, adapted, change, improved, role."""
    return [
        [row.dataset, row.metric, row.base, row.adapted, row.adapted - row.base, row.improved, row.role]
        for row in report.rows
    ]


EVALUATION_COLUMNS = ["dataset", "metric", "base", "adapted", "change", "improved", "role"]


def evaluation_markdown(report: EvalReport) -> str:
    """The evaluation table as Markdown (TensorBoard's text tab and MLflow's artifact show it)."""
    lines = ["| " + " | ".join(EVALUATION_COLUMNS) + " |", "|" + " --- |" * len(EVALUATION_COLUMNS)]
    for row in evaluation_table(report):
        cells = [f"{cell:.6g}" if isinstance(cell, float) else str(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def open_trackers(run: Run) -> ExperimentTrackers | None:
    """Start the trackers ``run.config.tracking`` names; None when it names none or on a process
    other than the main one.

    A resumed run continues the MLflow run its ``run.json`` names (``tracking``, see
    :meth:`ExperimentTrackers.describe`) instead of starting another. A tracker that is not installed or
    cannot be reached is a :class:`ConfigError` naming the field, raised before anything trains.
    """
    names = run.config.tracking.log_with
    if not names or not is_main_process():
        return None
    for name in names:
        _require(run.config, name)
    previous = _previous_tracking(run) if run.resume else {}
    trackers = ExperimentTrackers(run)
    try:
        for name in names:
            try:
                trackers.start(name, previous)
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - a library's own failure to start: its setup
                raise ConfigError(
                    f"{run.config.source}: {name} tracking could not start ({type(exc).__name__}: "
                    f"{_hide_credentials(_first_line(exc))}); check its setup, or remove {name} from "
                    "tracking.log_with"
                ) from None
    except BaseException:
        trackers.finish("failed")
        raise
    trackers.say_where()
    return trackers


def _previous_tracking(run: Run) -> dict[str, Any]:
    """The ``tracking`` record of the run being resumed (empty when it had none)."""
    try:
        record = json.loads((run.dir / "run.json").read_bytes())
    except (OSError, ValueError):
        return {}
    previous = record.get("tracking") if isinstance(record, dict) else None
    return previous if isinstance(previous, dict) else {}


def _require(config: RunConfig, name: str) -> None:
    import importlib.util

    module, install = REQUIREMENTS[name]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{config.source}: tracking.log_with names {name}, but {module} is not installed; "
            f"install it ({install}) or remove {name} from tracking.log_with"
        )


@contextlib.contextmanager
def _few_retries() -> Iterator[None]:
    """MLflow's HTTP retries cut to one quick try, unless the user set them: an unreachable
    server should be an error in seconds, not after minutes of back-off."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    added = [key for key in settings if key not in os.environ]
    os.environ.update({key: settings[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class ExperimentTrackers:
    """The trackers one run reports to (see the module's docstring); made by :func:`open_trackers`."""

    def __init__(self, run: Run):
        self.run = run
        self.started: dict[str, GeneralTracker] = {}
        self.last_step = 0
        self.mlflow_run_id: str | None = None
        self._datasets_logged: set[tuple[str, str]] = set()

    # -- start --------------------------------------------------------------------------------

    def start(self, name: str, previous: dict[str, Any]) -> None:
        """Start tracker ``name`` and record the run's parameters with it."""
        config = self.run.config
        if name == "mlflow":
            tracker = self._start_mlflow(previous.get("mlflow_run_id"))
        elif name == "tensorboard":
            from accelerate.tracking import TensorBoardTracker

            tracker = TensorBoardTracker(self.run.id, tracking_dir(config) / "tensorboard")
            tracker.start()
        else:
            from accelerate.tracking import WandBTracker

            folder = tracking_dir(config)
            folder.mkdir(parents=True, exist_ok=True)
            tracker = WandBTracker(
                experiment_name(self.run), name=self.run.id, dir=str(folder), tags=[self.run.task.name]
            )
            tracker.start()
        self.started[name] = tracker
        tracker.store_init_configuration(flat_params(config))

    def _start_mlflow(self, resume_id: str | None) -> GeneralTracker:
        import mlflow
        from accelerate.tracking import MLflowTracker

        config, uri = self.run.config, mlflow_uri(self.run.config)
        local = uri == f"sqlite:///{tracking_dir(config) / 'mlflow.db'}"
        if local:
            tracking_dir(config).mkdir(parents=True, exist_ok=True)
        # accelerate's tracker logs through MLflow's global URI, which MLflow also puts in
        # $MLFLOW_TRACKING_URI: that is put back, so that it still says what the user set
        # and the next run in this process resolves its own store
        users = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)
        if users is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = users
        tracker = MLflowTracker(
            experiment_name=experiment_name(self.run),
            logging_dir=(tracking_dir(config) / "mlartifacts").as_uri() if local else None,
            run_id=resume_id,
            tags=self._tags(),
            run_name=self.run.id,
            description=self.run.task.description or None,
        )
        try:
            with _few_retries():
                tracker.start()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the store is the user's setting
            if local:
                where = "tracking.dir"
            elif config.tracking.mlflow_uri:
                where = "tracking.mlflow_uri"
            else:
                where = "$MLFLOW_TRACKING_URI (or set tracking.mlflow_uri)"
            detail = _hide_credentials(_first_line(exc))
            raise ConfigError(
                f"{config.source}: MLflow cannot record the run at {without_credentials(uri)} "
                f"({type(exc).__name__}: {detail}); check {where} (is the server running?), "
                "or remove mlflow from tracking.log_with"
            ) from None
        self.mlflow_run_id = tracker.active_run.info.run_id
        return tracker

    def _tags(self) -> dict[str, str]:
        config = self.run.config
        return {
            "polyadapt.run_id": self.run.id,
            "polyadapt.task": self.run.task.name,
            "polyadapt.plugin": self.run.task.plugin,
            "polyadapt.base_model": config.base_model.id,
            "polyadapt.config_hash": config.hash(),
            "polyadapt.version": __version__,
            "polyadapt.run_dir": str(self.run.dir),
        }

    def describe(self) -> dict[str, Any]:
        """Where the run can be watched (for ``run.json``; a resumed run continues there)."""
        config = self.run.config
        out: dict[str, Any] = {"log_with": list(self.started), "experiment": experiment_name(self.run)}
        if "mlflow" in self.started:
            out |= {"mlflow_uri": without_credentials(mlflow_uri(config)), "mlflow_run_id": self.mlflow_run_id}
        if "tensorboard" in self.started:
            out["tensorboard_logdir"] = str(tracking_dir(config) / "tensorboard")
        return out

    def say_where(self) -> None:
        """Tell the user where the run can be watched."""
        where = self.describe()
        if "mlflow_run_id" in where:
            self.run.say(
                f"tracking: MLflow run {where['mlflow_run_id']} in experiment {where['experiment']!r} "
                f"at {where['mlflow_uri']}"
            )
        if "tensorboard_logdir" in where:
            self.run.say(f"tracking: TensorBoard events for `tensorboard --logdir {where['tensorboard_logdir']}`")
        if "wandb" in self.started:
            self.run.say(f"tracking: W&B project {where['experiment']!r}, run {self.run.id}")

    # -- while the run goes ---------------------------------------------------------------------

    def watch_datasets(self, gate: DataGate) -> None:
        """Report each dataset the gate admits (MLflow: as a run input with its digest), after
        whatever the gate already reports to."""
        before = gate.on_manifest

        def admitted(role: str, manifest: dict[str, Any]) -> None:
            if before is not None:
                before(role, manifest)
            self.dataset_admitted(role, manifest)

        gate.on_manifest = admitted
        for role, manifest in gate.manifests.items():  # admitted before the trackers opened
            self.dataset_admitted(role, manifest)

    def dataset_admitted(self, role: str, manifest: dict[str, Any]) -> None:
        """Record dataset ``manifest`` (used as ``role``) as an input of the MLflow run."""
        if "mlflow" not in self.started or (role, manifest["root_hash"]) in self._datasets_logged:
            return
        self._datasets_logged.add((role, manifest["root_hash"]))

        def log_input() -> None:
            import mlflow
            from mlflow.data.code_dataset_source import CodeDatasetSource
            from mlflow.data.meta_dataset import MetaDataset

            source_name = (manifest.get("source") or {}).get("name") or role
            dataset = MetaDataset(  # type: ignore[abstract]  # not an ABC: profile is optional
                CodeDatasetSource({"polyadapt.source": source_name, "polyadapt.role": role}),
                name=f"{role}:{source_name}",
                # MLflow keeps 36 characters of a digest; the full root hash goes in the tags
                digest=manifest["root_hash"][:36],
            )
            tags = {"root_hash": manifest["root_hash"], "records": str(manifest.get("records", "")), "role": role}
            mlflow.log_input(dataset, context=role, tags=tags)

        self._guard("mlflow", log_input)

    def log_step(self, record: dict[str, Any]) -> None:
        """Report one training log record (see :func:`polyadapt.training.train`'s ``on_log``)."""
        step = int(record.get("step", self.last_step))
        self.last_step = max(self.last_step, step)
        values = {
            key: value
            for key, value in record.items()
            if key not in _NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if values:
            for name in list(self.started):
                self._guard(name, self.started[name].log, values, step=step)

    def log_evaluation(self, report: EvalReport) -> None:
        """Report the evaluation, base against adapted: a metric per row and value, and the table."""
        values: dict[str, float] = {}
        for row in report.rows:
            values[metric_name("eval", row.dataset, row.metric, "base")] = row.base
            values[metric_name("eval", row.dataset, row.metric, "adapted")] = row.adapted
        table, rows = evaluation_markdown(report), evaluation_table(report)
        for name in list(self.started):
            tracker = self.started[name]
            self._guard(name, tracker.log, values, step=self.last_step)
            if name == "mlflow":
                self._guard(name, self._mlflow_evaluation, table, rows)
            elif name == "tensorboard":
                self._guard(name, tracker.log, {"evaluation": table}, step=self.last_step)
            elif name == "wandb":
                self._guard(name, tracker.log_table, "evaluation", EVALUATION_COLUMNS, rows, step=self.last_step)

    @staticmethod
    def _mlflow_evaluation(table: str, rows: list[list[Any]]) -> None:
        import mlflow

        mlflow.log_text(table, "evaluation/table.md")
        mlflow.log_dict({"rows": [dict(zip(EVALUATION_COLUMNS, row)) for row in rows]}, "evaluation/table.json")

    # -- the end --------------------------------------------------------------------------------

    def finish(self, status: str) -> None:
        """Close every tracker with the run's outcome (``run.json``'s status); MLflow first
        keeps the run folder's record, adapter, logs and lineage manifests as artifacts."""
        if "mlflow" in self.started:
            self._guard("mlflow", self._mlflow_artifacts, drop=False)
        exit_code = 0 if status == "completed" else 1
        for name in list(self.started):
            tracker = self.started.pop(name)
            if name == "mlflow":
                import mlflow

                # ended even when its artifacts failed: the process may start another run
                self._guard(name, mlflow.end_run, MLFLOW_STATUS.get(status, "FAILED"))
            elif name == "wandb":
                self._guard(name, tracker.run.finish, exit_code=exit_code)
            else:
                self._guard(name, tracker.finish)

    def _mlflow_artifacts(self) -> None:
        import mlflow

        for name in RUN_ARTIFACTS:
            if (self.run.dir / name).is_file():
                mlflow.log_artifact(str(self.run.dir / name))
        for folder, artifact_path in RUN_ARTIFACT_FOLDERS.items():
            if (self.run.dir / folder).is_dir():
                mlflow.log_artifacts(str(self.run.dir / folder), artifact_path)

    def _guard(self, name: str, call: Callable[..., object], *args: Any, drop: bool = True, **kwargs: Any) -> None:
        """``call(*args, **kwargs)`` for tracker ``name``; one that fails is dropped (with ``drop``)
        with a warning instead of ending the run."""
        try:
            call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a tracker's outage must not cost the run
            if drop:
                self.started.pop(name, None)
            problem = f"{name} tracking stopped ({type(exc).__name__}: {_hide_credentials(_first_line(exc))})"
            warnings.warn(problem, stacklevel=2)
            self.run.say(f"warning: {problem}")


def _hide_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` part of any URL in it removed."""
    return re.sub(r"(?<=://)[^/@\s]+@", "", text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no details"
